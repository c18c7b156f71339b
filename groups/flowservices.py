"""Flow control in the services (issue 20): the definition's settings for a group
session and the timers each change arms, moves or disarms (``groups.timers``); the
handlers that fire them, and the console's flow commands, are ``groups.flowhandlers``.

The pure decisions are ``groups.flowcontrol``'s; this module only reads settings,
calls them with the server's time, and schedules. Hook-in points (all under the group
session's lock, in the change's transaction):

- ``follow(gs, new, events, now)``: before a change is saved, a new step of a timed
  ``group_trial`` starts its countdown (``StartTimer``: same save, same broadcast);
- ``arm(gs, old, new, events, now)``: after it is saved, the timers it calls for;
- ``everyone_answered(gs)``: the last answer of a step (``groups.answers``);
- ``went_offline(gs, new)``: presence batches (``groups.presence``);
- ``join_action`` (a lobby's ``Arrive`` or a plain ``Join``), ``hand_to_bots`` (policy
  ``bot``: the run goes to ``BOT_PLAYERS`` after the commit).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial

from django.db import transaction
from django.utils import timezone

from realtime.ports import CONSOLE

from . import actions, live, store, timers
from . import flowcontrol as fc
from . import state as sm
from .models import GroupSession, ProcessConnections, Timer

logger = logging.getLogger(__name__)

AUTO = "auto"  # ``by`` of a change the server made by itself (the step log's data["by"])
TIMEOUT, ADVANCE, DROPOUT, RELEASE, LOBBY_START = "timeout", "advance", "dropout", "release", "lobby_start"
#: Flow events written to the step log (besides the lifecycle's).
LOGGED = frozenset(
    {"timer_started", "timer_expired", "timed_out", "skipped", "timer_extended", "timer_stopped", "moved_on",
     "sent_back", "resent", "dropped_out", "bot_took_over", "returned", "replaced", "released", "standby"}
)  # fmt: skip

#: ``player(group_session_id, pseudonym, session_id)`` plays a dropped-out participant's
#: run on (policy ``bot``), called after the commit. The bots of issue 19 register here.
BOT_PLAYERS: list[Callable[[int, str, int], None]] = []


# ---- settings -------------------------------------------------------------------


_links: dict[int, tuple] = {}  # experiment id -> (its updated, [(form name, flow)]) of group_trial forms


def trial_flows(gs: GroupSession) -> list[tuple[str, dict]]:
    """(form name, flow) of the experiment's ``group_trial`` forms, read once per version
    of the experiment (a reloaded definition saves it, so ``updated`` changes)."""
    from runner.models import ExperimentXForm

    experiment = gs.experiment
    cached = _links.get(experiment.pk)
    if cached is None or cached[0] != experiment.updated:
        rows = ExperimentXForm.objects.filter(experiment_id=experiment.pk, handler="group_trial").order_by("order")
        cached = (experiment.updated, list(rows.values_list("form__name", "flow")))
        _links[experiment.pk] = cached
    return cached[1]


def step_flow(gs: GroupSession, state: sm.GroupState) -> fc.StepFlow:
    """The flow of the ``group_trial`` form the group is on: the one most active
    participants were last served, else the experiment's first ``group_trial``."""
    links = trial_flows(gs)
    if not links:
        return fc.StepFlow()
    flows = dict(reversed(links))
    located = Counter(p.form for p in state.participants.values() if p.active and p.form in flows)
    name = located.most_common(1)[0][0] if located else links[0][0]
    return fc.StepFlow.from_definition(flows[name])


def dropout_policy(gs: GroupSession) -> fc.DropoutPolicy | None:
    return fc.DropoutPolicy.from_definition(gs.experiment.dropout)


def lobby_policy(gs: GroupSession) -> fc.LobbyPolicy | None:
    return fc.LobbyPolicy.from_definition(gs.experiment.lobby)


# ---- hook-ins -------------------------------------------------------------------


def follow(gs: GroupSession, new: sm.GroupState, events: list, now: int) -> tuple[sm.GroupState, list]:
    """A new step of a timed form counts down from its onset: ``starts_at`` (the live
    page's reveal, ``groups.live``) is chosen here, before the commit, and the deadline is
    ``starts_at`` + timeout in the same change; ``live.pin`` makes that ``starts_at`` the
    step's after the commit, so pages and console count down the seconds the
    participant sees the step."""
    if new.phase != sm.RUNNING or not {e.kind for e in events} & {"started", "advanced"}:
        return new, events
    flow = step_flow(gs, new)
    if flow.timeout_ms is None:
        return new, events
    plan = live.reserve(gs, len(new.participants))  # the step's onset (the live page's starts_at), with its lead
    timed, more = sm.transition(new, actions.StartTimer(new.step, flow.deadline(plan[0])), now_ms=now)
    transaction.on_commit(partial(live.pin, gs.pk, gs.participant_code, new.step, plan))
    return timed, [*events, *more]


def arm(gs: GroupSession, old: sm.GroupState, new: sm.GroupState, events: list, now: int) -> None:
    """Arm, move or disarm the timers a saved change calls for."""
    kinds = {e.kind for e in events}
    if kinds & {"ended", "aborted"} or new.phase in sm.TERMINAL:
        Timer.objects.filter(group_session=gs, fired_ms__isnull=True).delete()
        return
    if new.step != old.step:  # one statement: it runs under the lock of every advance
        timers.cancel(gs.pk, (TIMEOUT, ADVANCE), str(old.step))
    if new.deadline_ms is not None and new.deadline_ms != old.deadline_ms:
        flow = step_flow(gs, new)
        data = {"on_timeout": flow.on_timeout, "deadline_ms": new.deadline_ms}
        timers.schedule(gs.pk, TIMEOUT, str(new.step), due_ms=new.deadline_ms, data=data)
    elif new.deadline_ms is None and old.deadline_ms is not None and new.step == old.step:
        timers.cancel(gs.pk, TIMEOUT, str(new.step))  # stopped or paused (resume arms it anew)
    if kinds & {"all_responded", "timer_expired", "resumed", "moved_on", "dropped_out"}:
        _arm_advance(gs, new, now)
    if kinds & {"started", "resumed", "disconnected"}:
        went_offline(gs, new)
    if kinds & {"joined", "standby"}:
        _arm_releases(gs, new)
    if "joined" in kinds and fc.lobby_full(new, lobby_policy(gs)):
        timers.schedule(gs.pk, LOBBY_START, "0", due_ms=now)


def _arm_advance(gs: GroupSession, state: sm.GroupState, now: int) -> None:
    due = fc.advance_due(state, step_flow(gs, state), now)
    if due is not None:
        timers.schedule(gs.pk, ADVANCE, str(state.step), due_ms=due)


def everyone_answered(gs: GroupSession) -> None:
    """The last answer of the step was stored (``groups.answers``, lock held)."""
    if not any(flow.get("auto_advance") for _name, flow in trial_flows(gs)):
        return  # the experimenter moves the group on: nothing to read
    state, _ = store.load_state(gs)
    _arm_advance(gs, state, timers.now_ms())


def presence_changed(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> None:
    """A presence batch was saved: someone who went offline may drop out."""
    if any(p.connected and not new.participants[pid].connected for pid, p in old.participants.items()):
        went_offline(gs, new)


def went_offline(gs: GroupSession, state: sm.GroupState) -> None:
    """Arm a dropout timer for each participant offline in a started session."""
    policy = dropout_policy(gs)
    for pid, due in fc.dropouts_due(state, policy).items():
        since = state.participants[pid].offline_since_ms
        data = {"participant": pid, "offline_since_ms": since}
        timers.schedule(gs.pk, DROPOUT, f"{pid}:{since}"[:64], due_ms=due, data=data)


def _arm_releases(gs: GroupSession, state: sm.GroupState) -> None:
    for pid, due in fc.releases_due(state, lobby_policy(gs)).items():
        data = {"participant": pid, "joined_ms": state.participants[pid].joined_ms}
        timers.schedule(gs.pk, RELEASE, pid, due_ms=due, data=data)


def console_open(gs_id: int) -> bool:
    """An experimenter's console is connected to the group session: some live server
    process counts one of its sockets (``realtime.ports.CONSOLE`` in the presence
    batches; a dead process's count is taken off with its lease, ``groups.presence``)."""
    return ProcessConnections.objects.filter(group_session_id=gs_id, pseudonym=CONSOLE, count__gt=0).exists()


def console_closed(gs: GroupSession, state: sm.GroupState, now: int) -> None:
    """The last console closed (presence batch, lock held): a full lobby that was waiting
    for the experimenter's confirmation now starts by itself."""
    if fc.lobby_start(state, lobby_policy(gs), console_open=False) == fc.START:
        timers.schedule(gs.pk, LOBBY_START, f"closed:{now}", due_ms=now)


def join_action(gs: GroupSession, pseudonym: str):
    """A newcomer joins (no lobby) or arrives in the lobby: placed while there is room
    (``max_size``) and the session has not started, else standby."""
    lobby = lobby_policy(gs)
    return sm.Join(pseudonym) if lobby is None else actions.Arrive(pseudonym, lobby.max_size)


def open_lobby_session(experiment) -> GroupSession | None:
    """The group session a lobby places arrivals into: the newest of ``experiment`` that
    has not expired or ended."""
    live = GroupSession.objects.filter(experiment=experiment, expires__gt=timezone.now())
    return live.exclude(phase__in=sm.TERMINAL).select_related("ticket").order_by("-created", "-pk").first()


def lobby_now(gs: GroupSession) -> dict | None:
    """The lobby's frame part for ``gs`` as it is now (``waiting_for``, ``placed``,
    ``min_size``, ``eta_seconds``): the door shows it before *Join*. Reads only."""
    state, _ = store.load_state(gs)
    return fc.lobby_view(lobby_policy(gs), state)


def hand_to_bots(gs_id: int, events: list, session_ids: dict) -> None:
    """After the commit: each participant a bot took over is played on by the registered
    bot players (none registered: the step log says so, the group goes on with them
    counted as active, so the console's *Move on* or the timer closes their steps)."""
    for event in events:
        if event.kind != "bot_took_over":
            continue
        pid = event.data["participant"]
        if not BOT_PLAYERS:
            logger.warning("group session %s: no bot player registered for %s (issue 19)", gs_id, pid)
        for player in BOT_PLAYERS:
            transaction.on_commit(lambda p=player, pid=pid: p(gs_id, pid, session_ids.get(pid, 0)))
