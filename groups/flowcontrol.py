"""Flow control of a live group session (issue 20), in pure Python like ``groups.state``:
step timers, auto-advance, the console's per-participant controls, dropouts and the
lobby are transitions with time as an argument (``transition(state, action, now_ms=)``
dispatches the actions of this module here), and the ``*_due`` functions say when the
services must act next. Nothing here reads a clock, a database or a socket.

Settings come from the definition (``StepFlow``, ``DropoutPolicy``, ``LobbyPolicy``,
built from ``ExperimentXForm.flow`` / ``Experiment.dropout`` / ``Experiment.lobby``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

from .actions import Arrive, DropOut, ExtendTimer, MoveOn, Release, Resend, SendBack, StartTimer, StopTimer, TimeOut
from .flowsettings import DropoutPolicy, LobbyPolicy, StepFlow, ms  # noqa: F401  (re-exported: flowcontrol.StepFlow, ...)
from .state import (
    ANSWERING,
    ENDED,
    INACTIVE,
    JOINED,
    KICKED,
    PAUSED,
    READY,
    RELEASED,
    RESPONDED,
    RUNNING,
    STANDBY,
    WAITING,
    Event,
    GroupError,
    GroupState,
    Participant,
    answered_already,
    bump,
    changed,
    extend,
    member,
    not_over,
    require_started,
    require_step,
)

TIMED_OUT, SKIPPED = "timed_out", "skipped"
LATE_ANSWER = "late_answer"  # timed out (on_timeout: submit), then the page's answer came: kept, once
MAX_EXTEND_SECONDS = 24 * 3600


# ---- timers ---------------------------------------------------------------------


def _newly_all_responded(before: GroupState, after: GroupState, now: int) -> list[Event]:
    if after.phase in (RUNNING, PAUSED) and not before.all_responded and after.all_responded:
        return [Event("all_responded", now, {"step": after.step})]
    return []


def _require_timer(state: GroupState) -> None:
    if state.deadline_ms is None and state.timer_remaining_ms is None:
        raise GroupError("No timer is running at this step.", code="no_timer")


def _start_timer(state, action, now):
    require_started(state)
    require_step(state, action.step)
    if state.deadline_ms == action.deadline_ms or state.timed_out_step == state.step:
        return state, []
    if state.phase == PAUSED:
        changes = {"timer_remaining_ms": max(0, action.deadline_ms - now), "deadline_ms": None}
    else:
        changes = {"deadline_ms": action.deadline_ms, "timer_remaining_ms": None}
    new = bump(state, now, visible=True, **changes)
    return new, [Event("timer_started", now, {"step": state.step, "deadline_ms": action.deadline_ms})]


def _time_out(state, action, now):
    """Close every open answer of the step; a stopped, paused or extended timer (or one
    that already ran out) makes this a no-op, so a late or repeated firing changes nothing."""
    require_started(state)
    require_step(state, action.step)
    armed_for = state.deadline_ms if action.deadline_ms is None else action.deadline_ms
    if state.deadline_ms is None or armed_for != state.deadline_ms or state.timed_out_step == state.step:
        return state, []  # stopped, paused, extended since it was armed, or already out
    if action.deadline_ms is None and now < state.deadline_ms:
        return state, []  # early (a timer that knows its deadline is trusted: clocks differ)
    if action.on_timeout not in ("submit", "skip"):
        raise GroupError(f"on_timeout {action.on_timeout!r} is neither submit nor skip.", code="bad_flow")
    flag = TIMED_OUT if action.on_timeout == "submit" else SKIPPED
    participants = dict(state.participants)
    events = [Event("timer_expired", now, {"step": state.step, "deadline_ms": state.deadline_ms})]
    for pid, p in state.participants.items():
        if p.active and p.responded_step != state.step:
            participants[pid] = replace(p, responded_step=state.step, status=RESPONDED, flag=flag)
            events.append(Event(flag, now, {"participant": pid, "step": state.step, "bot": p.bot}))
    changes = {"participants": MappingProxyType(participants), "deadline_ms": None, "timed_out_step": state.step}
    new = bump(state, now, visible=True, **changes)
    return new, events + _newly_all_responded(state, new, now)


def _extend_timer(state, action, now):
    require_started(state)
    require_step(state, action.step)
    _require_timer(state)
    seconds = action.seconds
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise GroupError("Extend the timer by a number of seconds.", code="bad_seconds")
    if not 0 < seconds <= MAX_EXTEND_SECONDS:
        raise GroupError(f"Extend the timer by 1 to {MAX_EXTEND_SECONDS} seconds.", code="bad_seconds")
    if state.deadline_ms is not None:
        changes = {"deadline_ms": state.deadline_ms + ms(seconds)}
    else:
        changes = {"timer_remaining_ms": state.timer_remaining_ms + ms(seconds)}
    new = bump(state, now, visible=True, **changes)
    data = {"step": state.step, "seconds": seconds, "deadline_ms": new.deadline_ms}
    return new, [Event("timer_extended", now, data)]


def _stop_timer(state, action, now):
    require_started(state)
    require_step(state, action.step)
    _require_timer(state)
    new = bump(state, now, visible=True, deadline_ms=None, timer_remaining_ms=None)
    return new, [Event("timer_stopped", now, {"step": state.step})]


def answer_again(state, action, p, now):
    """A ``Respond`` to a step the participant's answer is already closed for: the one
    answer their page sends after the timer closed it (``on_timeout: submit``) is taken,
    once; after a skip, or any other second answer, nothing is stored."""
    if p.flag == SKIPPED:
        raise GroupError("This step was closed for you; it stores nothing.", code="skipped")
    if p.flag != TIMED_OUT:
        answered_already(state, action, p, now)
    new = bump(state, now, visible=True, participants=changed(state, action.participant, flag=LATE_ANSWER))
    return new, [Event("responded", now, {"participant": action.participant, "step": state.step, "late": True})]


# ---- the console's per-participant controls -------------------------------------


def _move_on(state, action, now):
    require_started(state)
    p = member(state, action.participant)
    require_step(state, action.step)
    if not p.active:
        raise GroupError(f"Participant {action.participant!r} is not in the lockstep.", code="not_active")
    if p.responded_step == state.step:
        raise GroupError(f"Participant {action.participant!r} already answered this step.", code="already_responded")
    changes = {"responded_step": state.step, "status": RESPONDED, "flag": SKIPPED}
    new = bump(state, now, visible=True, participants=changed(state, action.participant, **changes))
    events = [Event("moved_on", now, {"participant": action.participant, "step": state.step})]
    return new, events + _newly_all_responded(state, new, now)


def _send_back(state, action, now):
    require_started(state)
    p = member(state, action.participant)
    require_step(state, action.step)
    if p.responded_step != state.step or not p.active:
        raise GroupError(f"Participant {action.participant!r} has not answered this step.", code="not_responded")
    changes = {"responded_step": None, "status": ANSWERING, "flag": ""}
    new = bump(state, now, visible=True, participants=changed(state, action.participant, **changes))
    return new, [Event("sent_back", now, {"participant": action.participant, "step": state.step})]


def _resend(state, action, now):
    not_over(state)
    member(state, action.participant)
    new = bump(state, now, visible=True)
    return new, [Event("resent", now, {"participant": action.participant, "version": new.version})]


# ---- dropouts -------------------------------------------------------------------


def _drop_out(state, action, now):
    """Offline past ``after_ms`` during a running step: the policy decides. Anyone who is
    back online, already handled or out of the lockstep makes this a no-op."""
    require_started(state)
    p = member(state, action.participant)
    offline = p.offline_since_ms
    armed = action.offline_since_ms is not None  # a timer armed for this absence: its clock counts
    if p.connected or offline is None or p.dropped_at_ms is not None or (armed and action.offline_since_ms != offline):
        return state, []
    if not armed and now - offline < action.after_ms:
        return state, []
    if not p.active:
        return state, []
    if action.policy not in ("continue", "end_group", "bot"):
        raise GroupError(f"Unknown dropout policy {action.policy!r}.", code="bad_flow")
    changes = {"dropped_at_ms": now, "bot": action.policy == "bot"}
    new = bump(state, now, visible=True, participants=changed(state, action.participant, **changes))
    data = {"participant": action.participant, "step": state.step, "policy": action.policy, "offline_since_ms": offline}
    events = [Event("dropped_out", now, data)]
    if action.policy == "bot":
        events.append(Event("bot_took_over", now, {"participant": action.participant, "step": state.step}))
    elif action.policy == "end_group":
        new = replace(new, phase=ENDED)
        events.append(Event("ended", now, {"step": state.step, "reason": "dropout"}))
    return new, events + _newly_all_responded(state, new, now)


def step_handover(state: GroupState, now: int) -> tuple[GroupState, list[Event]]:
    """At a new step: a dropped participant who is back online takes over again (from
    the bot, too), and each dropout still away is replaced by a connected standby
    participant, first come first served. Called by ``groups.state`` at start and advance."""
    participants = dict(state.participants)
    events: list[Event] = []
    for pid, p in state.participants.items():
        if p.dropped_at_ms is not None and p.connected and p.status not in INACTIVE and not p.replaced_by:
            participants[pid] = replace(p, dropped_at_ms=None, bot=False)
            events.append(Event("returned", now, {"participant": pid, "step": state.step, "from_bot": p.bot}))
    standby = sorted((p.joined_ms, pid) for pid, p in participants.items() if p.status == STANDBY and p.connected)
    for pid, p in list(participants.items()):
        if not standby or p.dropped_at_ms is None or p.bot or p.replaced_by or p.status in INACTIVE:
            continue
        _joined, sub = standby.pop(0)
        participants[sub] = replace(participants[sub], status=READY)
        participants[pid] = replace(p, replaced_by=sub)
        events.append(Event("replaced", now, {"participant": sub, "replaces": pid, "step": state.step}))
    if not events:
        return state, []
    return replace(state, participants=MappingProxyType(participants)), events


# ---- the lobby ------------------------------------------------------------------


LOBBY_OUT = frozenset({STANDBY, RELEASED, KICKED})


def placed_count(state: GroupState) -> int:
    return sum(1 for p in state.participants.values() if p.status not in LOBBY_OUT)


def _arrive(state, action, now):
    not_over(state)
    if action.participant in state.participants:
        raise GroupError(f"Participant {action.participant!r} already joined.", code="already_joined")
    placed = state.phase == WAITING and placed_count(state) < action.max_size
    participants = dict(state.participants)
    participants[action.participant] = Participant(
        status=JOINED if placed else STANDBY, joined_ms=now, offline_since_ms=now
    )
    new = bump(state, now, visible=True, participants=MappingProxyType(participants))
    return new, [Event("joined" if placed else "standby", now, {"participant": action.participant})]


def _release(state, action, now):
    not_over(state)
    p = member(state, action.participant)
    waiting = p.status == STANDBY or (state.phase == WAITING and p.status not in INACTIVE)
    early = action.joined_ms is None and now - p.joined_ms < action.wait_ms  # an armed timer is trusted
    if not waiting or early:
        return state, []
    new = bump(state, now, visible=True, participants=changed(state, action.participant, status=RELEASED))
    return new, [Event("released", now, {"participant": action.participant, "step": state.step})]


# ---- what is due next (the services schedule these) -----------------------------


#: After a timeout with ``on_timeout: submit`` the group moves on no sooner than this: the
#: pages' answers (what is filled, sent at the deadline) land in the step they answer.
SUBMIT_GRACE_MS = 1500


def advance_due(state: GroupState, flow: StepFlow, now: int) -> int | None:
    """When the group should move on by itself, given it is ``now``: ``now`` + delay once
    the step's condition holds (everyone answered, or the timer ran out), else None."""
    if state.phase != RUNNING:
        return None
    timed_out = state.timed_out_step == state.step
    # on_timeout submit: the pages send what is filled when time runs out; wait for it
    delay = max(flow.delay_ms, SUBMIT_GRACE_MS) if timed_out and flow.on_timeout == "submit" else flow.delay_ms
    if flow.auto_advance == "timeout" and timed_out:
        return now + delay
    if flow.auto_advance == "all_responded" and (state.all_responded or timed_out):
        return now + delay
    return None


def dropouts_due(state: GroupState, policy: DropoutPolicy | None) -> dict[str, int]:
    """Participant -> when they count as dropped out, for those offline in a started session."""
    if policy is None or state.phase not in (RUNNING, PAUSED):
        return {}
    return {
        pid: p.offline_since_ms + policy.after_ms
        for pid, p in state.participants.items()
        if p.active and not p.connected and p.offline_since_ms is not None and p.dropped_at_ms is None
    }


def releases_due(state: GroupState, lobby: LobbyPolicy | None) -> dict[str, int]:
    """Participant -> when they are released: standby participants, and everyone while the
    session has not started, ``wait`` after they arrived."""
    if lobby is None or state.phase in ("ended", "aborted"):
        return {}
    return {
        pid: p.joined_ms + lobby.wait_ms
        for pid, p in state.participants.items()
        if p.status == STANDBY or (state.phase == WAITING and p.status not in INACTIVE)
    }


def lobby_full(state: GroupState, lobby: LobbyPolicy | None) -> bool:
    """The lobby reached ``min_size``: the session may start (by itself, or confirmed)."""
    return lobby is not None and state.phase == WAITING and placed_count(state) >= lobby.min_size


#: What a lobby at ``min_size`` does (``lobby_start``): start by itself, or ask the console.
START, CONFIRM = "start", "confirm"


def lobby_start(state: GroupState, lobby: LobbyPolicy | None, *, console_open: bool) -> str:
    """A full lobby starts the session by itself (``START``) unless an experimenter's
    console is open: then it asks them (``CONFIRM``: the console's *Start now* is the
    confirmation, and the session starts by itself once no console is open any more).
    "" while the lobby is not full or the session has started."""
    if not lobby_full(state, lobby):
        return ""
    return CONFIRM if console_open else START


def waiting_for(state: GroupState, lobby: LobbyPolicy) -> int:
    """How many more arrivals the lobby needs before it can start."""
    return max(0, lobby.min_size - placed_count(state))


def lobby_view(lobby: LobbyPolicy | None, state: GroupState) -> dict | None:
    """What lobby pages show: how many more are needed, and an estimated wait from the
    arrival rate so far (None until two have arrived)."""
    if lobby is None:
        return None
    placed = sorted(p.joined_ms for p in state.participants.values() if p.status not in LOBBY_OUT)
    needed = waiting_for(state, lobby) if state.phase == WAITING else 0
    eta = None
    if needed and len(placed) >= 2 and placed[-1] > placed[0]:
        eta = round(needed * (placed[-1] - placed[0]) / (len(placed) - 1) / 1000)
    return {"waiting_for": needed, "placed": len(placed), "min_size": lobby.min_size, "eta_seconds": eta}


def timer_view(state: GroupState) -> dict:
    """What pages show of the timer: the deadline (server ms; pages count down on their
    corrected clock), the time left while paused, and whether it ran out."""
    return {
        "deadline_ms": state.deadline_ms,
        "timer_remaining_ms": state.timer_remaining_ms,
        "timed_out": state.timed_out_step == state.step,
    }


#: Membership columns of flow control (issue 20), read after the others by ``load_state``.
FLOW_MEMBER_FIELDS = ("flag", "offline_since_ms", "dropped_at_ms", "bot", "replaced_by")


def flow_fields(values) -> dict:
    """The flow-control fields of a Participant from ``FLOW_MEMBER_FIELDS`` and ``joined`` (a
    timestamp, or epoch ms as ``groups.store.load`` reads it from PostgreSQL)."""
    *flow, joined = values
    fields = dict(zip(FLOW_MEMBER_FIELDS, flow, strict=True))
    fields["bot"] = bool(fields["bot"])
    if isinstance(joined, int) or joined is None:
        fields["joined_ms"] = joined or 0
    else:
        fields["joined_ms"] = int(joined.timestamp() * 1000)
    return fields


def flow_row(p: Participant) -> dict:
    """What the console shows of a participant's flow control."""
    return {"flag": p.flag, "dropped_at_ms": p.dropped_at_ms, "bot": p.bot, "replaced_by": p.replaced_by}


FLOW_HANDLERS = {  # registered with the state machine below
    StartTimer: _start_timer,
    TimeOut: _time_out,
    ExtendTimer: _extend_timer,
    StopTimer: _stop_timer,
    MoveOn: _move_on,
    SendBack: _send_back,
    Resend: _resend,
    DropOut: _drop_out,
    Arrive: _arrive,
    Release: _release,
}
extend(FLOW_HANDLERS, new_step=step_handover, answer_again=answer_again)
