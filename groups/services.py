"""Writes to group sessions. Each public service:

- locks the ``GroupSession`` row (``select_for_update`` inside ``transaction.atomic``),
  so every change of one group session is serialised across processes;
- applies one action of the pure state machine (``groups.state.transition``);
- writes the new state, the step log, the context checkpoint, and runs the hooks;
- publishes the new snapshot once it commits (``publish_on_commit``: from the state in
  hand; answers ask for one coalesced read per burst, ``broadcast_state(within=...)``);
- raises ``GroupError`` with a machine code, changing nothing, when refused.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exports import pseudonyms
from project.core.rows import Select, update_from
from realtime.broadcast import broadcast_state, publish_state

from . import flowservices, hooks
from . import state as sm
from .codes import new_code
from .context import merge
from .models import Group, GroupSession, Membership, StepLog
from .selectors import load_state
from .state import GroupError

LOGGED_EVENTS = {"started", "advanced", "paused", "resumed", "exit_loop", "ended", "aborted", "kicked", "context_set"}
LOGGED_EVENTS |= flowservices.LOGGED
STEP_EVENTS = {"started", "advanced"}


def now_ms() -> int:
    return int(time.time() * 1000)


def _pk(group_session: GroupSession | int) -> int:
    return group_session.pk if isinstance(group_session, GroupSession) else int(group_session)


# Every change of a group session, and every answer, starts here (project/core/rows.py).
_LOCKED = Select(GroupSession, related=("experiment",), where='t0."id" = %s', lock="FOR NO KEY UPDATE OF t0")


def _lock(group_session: GroupSession | int) -> GroupSession:
    try:
        # OF t0: lock the group session only, not its experiment's row as well (which would
        # serialise every group session of that experiment). no_key (FOR NO KEY UPDATE): the
        # changes never touch the key, and this mode does not conflict with the KEY SHARE
        # locks that rows referring to the group session take (Response rows of answers
        # being stored), so an answer storing its rows does not wait for, or deadlock
        # with, a change of its group session; each change still excludes every other.
        return _LOCKED.get(_pk(group_session))
    except GroupSession.DoesNotExist:
        raise GroupError(f"No group session {_pk(group_session)}.", code="not_found") from None


def _save(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> list[str]:
    """Write the changed memberships; set ``gs``'s fields and return their names (the
    caller saves ``gs`` once, after the hooks: one UPDATE per change, not three)."""
    gs.phase, gs.step, gs.version = new.phase, new.step, new.version
    gs.participant_version, gs.changed_ms, gs.exit_loop_step = (
        new.participant_version,
        new.changed_ms,
        new.exit_loop_step,
    )
    gs.deadline_ms, gs.timer_remaining_ms, gs.timed_out_step = (
        new.deadline_ms,
        new.timer_remaining_ms,
        new.timed_out_step,
    )
    fields = ["phase", "step", "version", "participant_version", "changed_ms", "exit_loop_step"]
    fields += ["deadline_ms", "timer_remaining_ms", "timed_out_step"]
    if new.phase == sm.RUNNING and gs.started is None:
        gs.started = timezone.now()
        fields.append("started")
    if new.phase in sm.TERMINAL and gs.ended is None:
        gs.ended = timezone.now()
        fields.append("ended")
    _update_memberships(gs, old, new)
    return fields


def publish_on_commit(gs: GroupSession, new: sm.GroupState) -> None:
    """Publish ``new`` once the transaction commits, from the state in hand (no read of
    every membership back). ``gs`` is copied now: a later change in the same
    transaction must not show in this version's snapshot."""
    transaction.on_commit(partial(publish_state, copy.copy(gs), new))


def checkpoint_context(gs: GroupSession, group: hooks.Group, *, save: bool = True) -> dict:
    """Put what the hooks of ``group`` left in the context into ``GroupSession.context``
    (caller holds the lock; saved in its transaction, so it commits or rolls back with
    the change; the context store's copy follows from the committed row, see
    ``groups.context``). ``save=False``: the caller saves the field with its others."""
    gs.context = group.context.value
    if save:
        gs.save(update_fields=["context"])
    return gs.context


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
        checkpoint_context(gs, group, save=False)  # after the hooks, so what they wrote is kept
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


def _transition_locked(gs: GroupSession, old, session_ids, action, *, by=None, first=None):
    """Transition a locked group session and persist it (caller holds the lock).
    ``first(group, new)`` runs before the events' hooks (see ``_after``)."""
    now = now_ms()
    new, events = sm.transition(old, action, now_ms=now)
    if new is not old:
        new, events = flowservices.follow(gs, new, events, now)  # a timed step's countdown
        fields = _save(gs, old, new)
        fields += _after(gs, new, session_ids, events, by, first)
        gs.save(update_fields=fields)
        flowservices.arm(gs, old, new, events, now)
        flowservices.hand_to_bots(gs.pk, events, session_ids)
        if new.participant_version != old.participant_version:
            publish_on_commit(gs, new)  # participants wait for it: at once, from the state in hand
        else:  # the console's alone (a form location, an ack): coalesced when many come together
            transaction.on_commit(partial(broadcast_state, gs.pk))
    return new, events


def _apply(group_session, action, *, by=None):
    """Lock, transition, save, log, hook, publish. Returns (gs, new_state, events, session_ids)."""
    with transaction.atomic():
        gs = _lock(group_session)
        old, session_ids = load_state(gs)
        new, events = _transition_locked(gs, old, session_ids, action, by=by)
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
        gs = _lock(gs)
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
    from runner import services as runner_services

    request = getattr(runner_services, "request_loop_exit", None)
    for session_id in session_ids if request else ():
        request(session_id=session_id)


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
        gs = _lock(group_session)
        old, session_ids = load_state(gs)
        sm.transition(old, sm.SetContext(patch), now_ms=now_ms())  # phase and shape first
        gs.context = merge(gs.context or {}, patch)  # refused before anything is written
        _transition_locked(gs, old, session_ids, sm.SetContext(patch), by=by)
        return gs.context


def group_session_kick(*, group_session: GroupSession | int, participant: str, by=None) -> sm.GroupState:
    """Remove ``participant`` (a pseudonym): their socket is closed and their runs
    refused from now on. Raises ``unknown_participant``, ``kicked``, ``ended``."""
    return _apply(group_session, sm.Kick(participant), by=by)[1]


def save_notes(*, group_session: GroupSession | int, notes: str) -> None:
    """The experimenter's free-text notes (no state change, no broadcast)."""
    GroupSession.objects.filter(pk=_pk(group_session)).update(notes=notes)


# ---- participants --------------------------------------------------------------


def participant_connected(*, group_session: GroupSession | int, participant: str) -> None:
    """A participant socket opened. Raises ``unknown_participant``, ``kicked``."""
    _apply(group_session, sm.Connect(participant))


def participant_disconnected(*, group_session: GroupSession | int, participant: str) -> None:
    """A participant socket closed (never raises for a known group session)."""
    try:
        _apply(group_session, sm.Disconnect(participant))
    except GroupError:
        pass


def participant_ready(*, group_session: GroupSession | int, participant: str, step: int) -> None:
    """The participant is on the waiting screen for ``step``. Raises ``stale_step``, ``ended``, ..."""
    _apply(group_session, sm.Ready(participant, step))


def record_ack(*, group_session: GroupSession | int, participant: str, version: int) -> None:
    """The participant received state ``version`` (the console shows who is behind).
    Raises ``bad_version``, ``unknown_participant``."""
    _apply(group_session, sm.Ack(participant, version))


def _update_memberships(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> None:
    """Write every changed participant row in one statement, not one query per row (an
    advance after everyone answered changes every row)."""
    changed = [
        (pid, p.connections, p.status, p.form, p.responded_step, p.acked_version)
        + (p.flag, p.offline_since_ms, p.dropped_at_ms, p.bot, p.replaced_by)
        for pid, p in new.participants.items()
        if old.participants.get(pid) != p
    ]
    update_members_from(
        gs.pk,
        (("p", "text"), ("c", "int"), ("s", "text"), ("f", "text"), ("r", "int"), ("a", "bigint"))
        + (("fl", "text"), ("o", "bigint"), ("d", "bigint"), ("b", "boolean"), ("rb", "text")),
        changed,
        "connections = v.c, status = v.s, form = v.f, responded_step = v.r, acked_version = v.a, "
        "flag = v.fl, offline_since_ms = v.o, dropped_at_ms = v.d, bot = v.b, replaced_by = v.rb",
    )


def update_members_from(group_session_id: int, columns, rows: list[tuple], assign: str, *, where: str = "",
                        params: tuple = ()) -> int:  # fmt: skip
    """``UPDATE`` the memberships of one group session from ``rows`` (tuples in the order
    of ``columns``, ``(name, PostgreSQL type)`` pairs, the first the pseudonym) in one
    statement (``project.core.rows.update_from``): ``assign`` is the SET list and
    ``where`` more conditions, both naming the row's values ``v.<name>`` (``params`` fill
    the ``%s`` in ``where``). Returns how many memberships changed."""
    from django.db import connection

    table = connection.ops.quote_name(Membership._meta.db_table)
    match = f"{table}.group_session_id = %s AND {table}.pseudonym = v.{columns[0][0]} {where}"
    return update_from(Membership._meta.db_table, columns, rows, assign, match, (group_session_id, *params))


def _membership(session) -> Membership:
    membership = Membership.objects.filter(session=session).first()
    if membership is None:
        raise GroupError("This run is not part of a group session.", code="not_in_group")
    return membership


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
