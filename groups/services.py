"""Writes to group sessions. Each public service:

- locks the ``GroupSession`` row and loads its state (``groups.store``), so every
  change of one group session is serialised across processes;
- applies one action of the pure state machine (``groups.state.transition``);
- saves the new state (``store.save``), writes the step log and the context
  checkpoint, and runs the hooks;
- publishes the new snapshot once it commits (``store.publish_on_commit``: from the
  state in hand; console-only changes ask for one coalesced read, ``store.publish_console``);
- raises ``GroupError`` with a machine code, changing nothing, when refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exports import pseudonyms

from . import flowservices, hooks, live, store
from . import state as sm
from .codes import new_code
from .context import merge
from .models import Group, GroupSession, Membership, StepLog
from .state import GroupError
from .store import load_state, now_ms

LOGGED_EVENTS = {"started", "advanced", "paused", "resumed", "exit_loop", "ended", "aborted", "kicked", "context_set"}
LOGGED_EVENTS |= flowservices.LOGGED
STEP_EVENTS = {"started", "advanced"}
READY_FLUSH_SECONDS = getattr(settings, "GROUP_READY_FLUSH_SECONDS", 0.1)


def _after(gs, new, session_ids, events, by, first=None) -> list[str]:
    """Step log, shared parameters, checkpoints and hooks for ``events``. ``first(group, new)``
    (e.g. ``on_response``) runs before the hooks the events call (``on_all_responded``).
    The context is saved whenever a hook wrote it, in this transaction: the database is
    its record (``groups.context``). Returns the fields of ``gs`` it set (saved by the caller)."""
    kinds = {e.kind for e in events}
    fields = []
    group = hooks.Group(gs, new, session_ids, locked=True)
    if first is not None:
        first(group, new)
    if kinds & STEP_EVENTS:
        gs.shared_params = hooks.call_advance(group, gs.experiment)
        fields.append("shared_params")
    if "all_responded" in kinds:
        hooks.call_quietly("on_all_responded", gs.experiment, group)
    if kinds & {"ended", "aborted"}:
        hooks.call_quietly("on_end", gs.experiment, group)
    if kinds & (STEP_EVENTS | {"ended", "aborted", "context_set"}) or group.context.dirty:
        store.checkpoint_context(gs, group, save=False)  # after the hooks, so what they wrote is kept
        fields.append("context")
    for event in events:
        if event.kind in LOGGED_EVENTS:
            StepLog.objects.create(
                group_session=gs,
                step=event.data.get("step", new.step),
                action=event.kind,
                by=by if getattr(by, "is_authenticated", False) else None,
                at=datetime.fromtimestamp(event.at_ms / 1000, tz=UTC),
                at_ms=event.at_ms,
                shared_params=gs.shared_params if event.kind in STEP_EVENTS else {},
                data={k: v for k, v in event.data.items() if k != "step"} | ({"by": by} if by == "auto" else {}),
            )
    return fields


def _transition_locked(gs: GroupSession, old, session_ids, action, *, by=None, first=None, content_reads=None):
    """Transition a locked group session and persist it (caller holds the lock).
    ``first(group, new)`` runs before the events' hooks (see ``_after``)."""
    now = now_ms()
    new, events = sm.transition(old, action, now_ms=now)
    if new is not old:
        new, events = _persist(gs, old, new, events, session_ids, now, by=by, first=first, content_reads=content_reads)
    return new, events


def _persist(gs: GroupSession, old, new, events, session_ids, now: int, *, by=None, first=None, content_reads=None):
    """Save, log, hook, arm and publish the transition(s) from ``old`` to ``new`` (see
    ``_transition_locked``); returns the state and events after the flow control's own.
    ``content_reads``: the rows of the new step's content, read with the lock (``_apply``)."""
    new, events = flowservices.follow(gs, new, events, now)  # a timed step's countdown
    fields = store.save(gs, old, new)
    fields += _after(gs, new, session_ids, events, by, first)
    gs.save(update_fields=fields)
    flowservices.arm(gs, old, new, events, now)
    flowservices.hand_to_bots(gs.pk, events, session_ids)
    if new.participant_version == old.participant_version:  # the console's alone (a form location)
        store.publish_console(gs.pk)  # coalesced when many come together
    elif _counts_only(old, new, events):  # pages on the waiting screen: a count changed
        store.publish_console(gs.pk, within=READY_FLUSH_SECONDS)  # one snapshot per burst, not one per page
    else:
        store.publish_on_commit(gs, new, content_reads)  # participants wait for it: at once, from the state in hand
    return new, events


COUNT_EVENTS = frozenset({"joined", "ready"})


def _counts_only(old, new, events) -> bool:
    """A change that only moves the counts the other pages show ("12 of 500 ready"): a
    participant joining or arriving on the waiting screen. Published like a burst of answers
    (coalesced within ``GROUP_READY_FLUSH_SECONDS``): one snapshot each would send N frames to
    each of N pages while a large group gathers (O(N²) frames before the start). The page
    that joined gets its own view when its socket opens (``realtime``'s first push)."""
    same_step = (new.phase, new.step) == (old.phase, old.step)
    return bool(events) and same_step and all(e.kind in COUNT_EVENTS for e in events)


#: Actions that start a step: the rows its content is built from are read with the lock.
STARTS_STEP = (sm.Start, sm.Advance)


def _apply(group_session, action, *, by=None):
    """Lock, transition, save, log, hook, publish. Returns (gs, new_state, events, session_ids).
    An action that starts a step reads the rows of the step's content in the lock's round
    trip (``live.send_content_reads``): after the commit the content is built from them,
    without a round trip between the commit and the pages' state."""
    also = live.send_content_reads if isinstance(action, STARTS_STEP) else None
    with transaction.atomic():
        gs, old, session_ids, reads = store.lock_load_and(group_session, also)
        new, events = _transition_locked(gs, old, session_ids, action, by=by, content_reads=reads)
        return gs, new, events, session_ids


def apply_action(*, group_session: GroupSession | int, action, by=None) -> sm.GroupState:
    """Any action of the state machine through the usual lock, save, log, hooks and publish
    (the flow controls and timers use it: ``groups.flowhandlers``)."""
    return _apply(group_session, action, by=by)[1]


def _info(state: sm.GroupState, session_ids: dict, pid: str) -> hooks.ParticipantInfo:
    p = state.participants[pid]
    return hooks.ParticipantInfo(pid, session_ids.get(pid, 0), p.status, p.responded_step, p.connected)


# ---- creating and attaching -------------------------------------------------------


def start_group_session(
    *, experiment, group: Group | str | None = None, size: int | None = None, experimenter=None
) -> GroupSession:
    """Create a group session of a group ``experiment`` with a group ticket valid for
    ``GROUP_SESSION_HOURS``, a participant code and an experimenter code, and attach
    ``experimenter``. ``group`` may be a Group, a name (created if new) or None.

    Raises ``GroupError``: ``not_group`` (a solo experiment), ``bad_size``, ``codes_exhausted``.
    """
    from runner.models import Ticket

    if not experiment.is_group:
        raise GroupError(f"{experiment.slug} is not a group experiment.", code="not_group")
    if size is not None and size < 1:
        raise GroupError("A group has at least one participant.", code="bad_size")
    expires = timezone.now() + timedelta(hours=settings.GROUP_SESSION_HOURS)
    with transaction.atomic():
        if isinstance(group, str):
            group, _ = Group.objects.get_or_create(name=group, defaults={"created_by": experimenter})
        participant_code = new_code()
        ticket = Ticket.objects.create(
            experiment=experiment, type=Ticket.Type.GROUP, expires=expires, created_by=experimenter,
            label=f"group session ({group.name if group else 'no group'})",
        )  # fmt: skip
        gs = GroupSession.objects.create(
            experiment=experiment, group=group, ticket=ticket, participant_code=participant_code,
            experimenter_code=new_code(avoid={participant_code}), expires=expires,
            expected_size=size or experiment.group_size, created_by=experimenter, changed_ms=now_ms(),
        )  # fmt: skip
        if experimenter is not None:
            gs.experimenters.add(experimenter)
    return gs


def attach_experimenter(*, group_session: GroupSession, user) -> None:
    """Let staff ``user`` control ``group_session``. Raises ``GroupError`` ``forbidden``."""
    if not (user.is_authenticated and user.is_staff):
        raise GroupError("Only experimenters (staff) can control a group session.", code="forbidden")
    group_session.experimenters.add(user)


#: Characters of the export pseudonym that the console, the context and hooks show.
DISPLAY_PSEUDONYM_LENGTH = 7


def participant_pseudonym(session, taken, *, scope: str | None = None) -> str:
    """The id a participant has in a group session: the start of the pseudonym its run has
    in every export (``exports.pseudonyms``), ``DISPLAY_PSEUDONYM_LENGTH`` characters, or
    more where that start is ``taken`` in the group session. So a context entry or a
    console row joins to the exported rows by prefix. ``scope``: the experiment's
    pseudonym scope, when the caller has it already."""
    scope = scope or pseudonyms.scope_for(session.experiment)
    full = pseudonyms.pseudonym(pseudonyms.subject_key(session.subject_id, session.pk), scope)
    for length in range(DISPLAY_PSEUDONYM_LENGTH, len(full) + 1):
        if full[:length] not in taken:
            return full[:length]
    raise GroupError("This run is in the group session already.", code="forbidden")


def attach_participant(*, session, ticket) -> Membership:
    """Put runner ``session`` (started with group ``ticket``) into the ticket's group
    session under a fresh random pseudonym; run ``on_join``; publish. Idempotent: a
    session already attached gets its membership back.

    Locks the group session. Raises ``GroupError``: ``not_found`` (the ticket belongs
    to no group session), ``wrong_experiment``, ``forbidden`` (the run is in another
    group session), ``expired``, ``ended``.
    """
    gs = GroupSession.objects.filter(ticket=ticket).first()
    if gs is None:
        raise GroupError("This ticket belongs to no group session.", code="not_found")
    if session.experiment_id != gs.experiment_id:
        raise GroupError("This run is for another experiment.", code="wrong_experiment")
    with transaction.atomic():
        gs = store.lock(gs)
        existing = Membership.objects.filter(session=session).first()
        if existing is not None:
            if existing.group_session_id != gs.pk:
                raise GroupError("This run already belongs to another group session.", code="forbidden")
            return existing
        if gs.expires <= timezone.now():
            raise GroupError("This group session has expired.", code="expired")
        old, session_ids = load_state(gs)
        pseudonym = participant_pseudonym(session, old.participants)
        membership = Membership.objects.create(group_session=gs, session=session, pseudonym=pseudonym)
        session_ids[pseudonym] = session.pk

        def on_join(group, new):
            hooks.call_quietly("on_join", gs.experiment, group, _info(new, session_ids, pseudonym))

        _transition_locked(gs, old, session_ids, flowservices.join_action(gs, pseudonym), first=on_join)
    return membership


# ---- the experimenter's controls ----------------------------------------------------
# Each locks the group session, applies one action, logs it in the step log and
# publishes the new snapshot on commit. Refusals raise GroupError (see groups.state).


def group_session_start(*, group_session: GroupSession | int, by=None) -> sm.GroupState:
    """waiting -> running at step 0; ``on_advance`` gives step 0's shared parameters.
    Raises ``already_started``, ``ended``, ``hook_failed``."""
    return _apply(group_session, sm.Start(), by=by)[1]


def group_session_advance(*, group_session: GroupSession | int, step: int, by=None) -> sm.GroupState:
    """From ``step`` (the step the console shows) to ``step + 1``, with new shared
    parameters from ``on_advance`` and a context checkpoint.
    Raises ``stale_step`` (``step`` is not current), ``not_started``, ``not_running``, ``ended``, ``hook_failed``."""
    return _apply(group_session, sm.Advance(step), by=by)[1]


def group_session_pause(*, group_session: GroupSession | int, by=None) -> sm.GroupState:
    """running -> paused. Raises ``not_started``, ``not_running``, ``ended``."""
    return _apply(group_session, sm.Pause(), by=by)[1]


def group_session_resume(*, group_session: GroupSession | int, by=None) -> sm.GroupState:
    """paused -> running. Raises ``not_started``, ``not_paused``, ``ended``."""
    return _apply(group_session, sm.Resume(), by=by)[1]


def group_session_exit_loop(*, group_session: GroupSession | int, by=None) -> sm.GroupState:
    """Signal the participants' loop to end after the current step: an answer to this
    step leaves the loop (``TrialView.exit_loop``), and after commit every active run
    gets the runner's exit-loop flag (``runner.services.request_loop_exit``, its own
    lock, so no lock is held across apps). Raises ``not_started``, ``ended``."""
    gs, new, events, session_ids = _apply(group_session, sm.ExitLoop(), by=by)
    if events:
        active = [session_ids[pid] for pid in new.active if pid in session_ids]
        transaction.on_commit(partial(_flag_loop_exit, active))
    return new


def _flag_loop_exit(session_ids: list[int]) -> None:
    from runner.services import request_loop_exit

    for session_id in session_ids:
        request_loop_exit(session_id=session_id)


def group_session_end(*, group_session: GroupSession | int, by=None) -> sm.GroupState:
    """running/paused -> ended; checkpoints the context; runs ``on_end``.
    Raises ``not_started``, ``ended``."""
    return _apply(group_session, sm.End(), by=by)[1]


def group_session_abort(*, group_session: GroupSession | int, by=None) -> sm.GroupState:
    """Any live phase -> aborted; checkpoints the context; runs ``on_end``. Raises ``ended``."""
    return _apply(group_session, sm.Abort(), by=by)[1]


def group_session_set_context(*, group_session: GroupSession | int, patch: dict, by=None) -> dict:
    """Merge ``patch`` into the shared context (``None`` deletes a key), saved in the
    database in this transaction (the context store's copy follows once it commits).
    Returns the new context. Raises ``bad_patch`` (not an object of string keys, or a
    value the context cannot hold: ``groups.context.merge`` names the key; nothing is
    written anywhere), ``ended``."""
    with transaction.atomic():
        gs, old, session_ids = store.lock_and_load(group_session)
        sm.transition(old, sm.SetContext(patch), now_ms=now_ms())  # phase and shape first
        gs.context = merge(gs.context or {}, patch)  # refused before anything is written
        _transition_locked(gs, old, session_ids, sm.SetContext(patch), by=by)
        return gs.context


def group_session_kick(*, group_session: GroupSession | int, participant: str, by=None) -> sm.GroupState:
    """Remove ``participant`` (a pseudonym): their socket is closed and their runs
    refused from now on. Raises ``unknown_participant``, ``kicked``, ``ended``."""
    return _apply(group_session, sm.Kick(participant), by=by)[1]


#: The experimenter socket's commands (message type -> service), for ``realtime.ports``.
EXPERIMENTER_COMMANDS = {
    "start": group_session_start,
    "pause": group_session_pause,
    "resume": group_session_resume,
    "exit_loop": group_session_exit_loop,
    "end": group_session_end,
    "abort": group_session_abort,
    "advance": group_session_advance,
    "set_context": group_session_set_context,
    "kick": group_session_kick,
}


def save_notes(*, group_session: GroupSession | int, notes: str) -> None:
    """The experimenter's free-text notes (no state change, no broadcast)."""
    GroupSession.objects.filter(pk=store.pk_of(group_session)).update(notes=notes)


# ---- participants --------------------------------------------------------------


def participants_ready(*, group_session: GroupSession | int, steps: dict[str, int]) -> int:
    """The participants of ``steps`` (pseudonym -> step) are on the waiting screen: one lock,
    one read of the rows, each ``Ready`` through the state machine in turn (what it refuses,
    e.g. a step no longer current or a removed participant, is skipped: the page's next state
    says where the group is), then one write of the rows, one log and one publish for them
    all. What a process's hub writes for the pages of one batch (``realtime.broadcast.Hub.note``):
    one locked change each made N pages gathering N changes, each reading all N rows.
    Returns how many changed something."""
    changed, events = 0, []
    with transaction.atomic():
        gs, old, session_ids = store.lock_and_load(group_session)
        now, new = now_ms(), old
        for participant, step in steps.items():
            try:
                after, happened = sm.transition(new, sm.Ready(participant, step), now_ms=now)
            except GroupError:
                continue
            changed += after is not new
            new = after
            events.extend(happened)
        if new is not old:
            _persist(gs, old, new, events, session_ids, now)
    return changed


def check_ready(phase: str, current: int, step: int) -> None:
    """Raise what ``Ready(step)`` is refused with in a state at ``phase`` and step ``current``
    (``state.not_over``, ``state.require_step``: ``ended``, ``stale_step``): a socket's quick
    check of a ``ready`` against the last state its process published (``realtime.ports``)."""
    where = SimpleNamespace(phase=phase, step=current)  # all these guards read of a state
    sm.not_over(where)
    sm.require_step(where, step)


def record_location(*, session, form: str) -> None:
    """The runner served ``form`` (a form name) to ``session``; shown on the console.
    Does nothing for a session outside any group session."""
    membership = Membership.objects.filter(session=session).first()
    if membership is not None and membership.status != Membership.Status.KICKED:
        _apply(membership.group_session_id, sm.Locate(membership.pseudonym, form))


def participant_finished(*, session) -> None:
    """``session`` reached the end of the experiment: it no longer holds the group back."""
    membership = Membership.objects.filter(session=session).first()
    if membership is not None and membership.status != Membership.Status.KICKED:
        _apply(membership.group_session_id, sm.Finish(membership.pseudonym))
