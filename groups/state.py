"""The lockstep state machine of a live group session, in pure Python.

``transition(state, action, now_ms=...) -> (new_state, events)`` is the only way a
group session changes. It touches no database, socket or clock: the services load
a ``GroupState`` from the rows (under a lock), apply one action, write the new
state back and publish it. Refusals raise ``GroupError`` with a machine ``code``.

Versions: ``version`` grows with every change; ``participant_version`` is the version
of the last change participants see (acks, presence and form locations are console-only);
a participant is *behind* while ``acked_version < participant_version``. Flow control
(timers, auto-advance, dropouts, lobby) is in ``groups.flowcontrol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from project.core.errors import CodedError

from .actions import (  # noqa: F401  (re-exported: state.Start, ...)
    Abort,
    Ack,
    Action,
    Advance,
    Connect,
    Disconnect,
    End,
    ExitLoop,
    Finish,
    Join,
    Kick,
    Locate,
    Pause,
    Ready,
    Respond,
    Resume,
    SetContext,
    Start,
)

WAITING, RUNNING, PAUSED, ENDED, ABORTED = "waiting", "running", "paused", "ended", "aborted"
PHASES = (WAITING, RUNNING, PAUSED, ENDED, ABORTED)
TERMINAL = frozenset({ENDED, ABORTED})

# Participant statuses (groups.models.Membership.Status); the lobby's are outside the lockstep.
JOINED, READY, ANSWERING = "joined", "waiting", "answering"
RESPONDED, FINISHED, KICKED = "responded", "finished", "kicked"
STANDBY, RELEASED = "standby", "released"  # the lobby's (groups.flowcontrol)
#: Statuses that no longer hold the group back (``Participant.active``; the store's
#: batched "who is still answering" statement takes them from here).
INACTIVE = frozenset({KICKED, FINISHED, STANDBY, RELEASED})


class GroupError(CodedError):
    """A refused group action. ``code`` is machine-readable (sent to sockets as is)."""


@dataclass(frozen=True)
class Participant:
    connections: int = 0
    status: str = JOINED
    form: str = ""
    responded_step: int | None = None
    acked_version: int = 0
    # Flow control: flag (timed_out|skipped at this step), bot plays on, replaced_by (standby).
    flag: str = ""
    offline_since_ms: int | None = None
    dropped_at_ms: int | None = None
    bot: bool = False
    joined_ms: int = 0
    replaced_by: str = ""

    @property
    def connected(self) -> bool:
        return self.connections > 0

    @property
    def active(self) -> bool:
        """In the lockstep: not inactive, and not dropped out unless a bot plays on."""
        return self.status not in INACTIVE and (self.dropped_at_ms is None or self.bot)


@dataclass(frozen=True)
class GroupState:
    phase: str = WAITING
    step: int = 0
    version: int = 1
    participant_version: int = 1
    changed_ms: int = 0
    exit_loop_step: int | None = None
    deadline_ms: int | None = None  # the current step's timer runs out (None: no timer)
    timer_remaining_ms: int | None = None  # a paused timer's time left
    timed_out_step: int | None = None  # the step whose timer ran out
    participants: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        if not isinstance(self.participants, MappingProxyType):
            object.__setattr__(self, "participants", MappingProxyType(dict(self.participants)))

    @property
    def active(self) -> list[str]:
        return [pid for pid, p in self.participants.items() if p.active]

    @property
    def all_responded(self) -> bool:
        """Everyone in the lockstep answered the step (or all finished; False if nobody is in)."""
        active = self.active
        if not active:
            return any(p.status == FINISHED for p in self.participants.values())
        return all(self.participants[p].responded_step == self.step for p in active)

    @property
    def ready_count(self) -> int:
        """Ready for what comes next: on the waiting screen before the start, else answered the step."""
        if self.phase == WAITING:
            return sum(1 for p in self.participants.values() if p.active and p.status == READY)
        return sum(1 for p in self.participants.values() if p.active and p.responded_step == self.step)


@dataclass(frozen=True)
class Event:
    """Something that happened; services turn events into step-log rows and hooks."""

    kind: str
    at_ms: int
    data: dict[str, Any] = field(default_factory=dict)


# ---- guards ---------------------------------------------------------------------


def not_over(state: GroupState) -> None:
    if state.phase in TERMINAL:
        raise GroupError(f"The group session has {state.phase}.", code="ended")


def require_started(state: GroupState) -> None:
    not_over(state)
    if state.phase == WAITING:
        raise GroupError("The group session has not started yet.", code="not_started")


def _require_running(state: GroupState) -> None:
    require_started(state)
    if state.phase != RUNNING:
        raise GroupError("The group session is paused.", code="not_running")


def member(state: GroupState, pid: str, *, allow_kicked: bool = False) -> Participant:
    if pid not in state.participants:
        raise GroupError(f"No participant {pid!r} in this group session.", code="unknown_participant")
    participant = state.participants[pid]
    if not allow_kicked and participant.status == KICKED:
        raise GroupError(f"Participant {pid!r} was removed from the group session.", code="kicked")
    return participant


def require_step(state: GroupState, step: int) -> None:
    if step != state.step:
        raise GroupError(f"Step {step} is not the current step ({state.step}).", code="stale_step")


# ---- the transition -------------------------------------------------------------


def bump(state: GroupState, now_ms: int, *, visible: bool, **changes) -> GroupState:
    version = state.version + 1
    return replace(
        state,
        version=version,
        participant_version=version if visible else state.participant_version,
        changed_ms=now_ms,
        **changes,
    )


def changed(state: GroupState, pid: str, **changes) -> MappingProxyType:
    participants = dict(state.participants)
    participants[pid] = replace(participants[pid], **changes)
    return MappingProxyType(participants)


def _new_step_statuses(state: GroupState) -> MappingProxyType:
    """At a new step, everyone who was done with the old one is waiting again. Rows copied without the
    frozen ``__init__`` (valid already; a fifth of ``replace``'s time, 500 rows per advance under the lock)."""
    rows = {}
    for pid, p in state.participants.items():
        rows[pid] = new = object.__new__(Participant)
        new.__dict__.update(p.__dict__, status=READY if p.status == RESPONDED else p.status, flag="")
    return MappingProxyType(rows)


def transition(state: GroupState, action: Action, *, now_ms: int) -> tuple[GroupState, list[Event]]:
    """Apply ``action`` to ``state``; return the new state and what happened.

    Raises ``GroupError`` (nothing changes; codes in docs/groups.md, "Lifecycle"). A
    repeated ``Ack``/``Ready`` that changes nothing returns the state unchanged and no
    events (idempotent); a second ``Respond`` to a step is refused (``already_answered``).
    """
    handler = _HANDLERS.get(type(action)) or _EXTENSIONS.get(type(action))
    if handler is None:
        raise GroupError(f"Unknown action {type(action).__name__}.", code="unknown_action")
    return handler(state, action, now_ms)


def _start(state, action, now):
    not_over(state)
    if state.phase != WAITING:
        raise GroupError("The group session has already started.", code="already_started")
    new = bump(state, now, visible=True, phase=RUNNING, participants=_new_step_statuses(state))
    new, handed = _NEW_STEP[0](new, now)
    return new, [Event("started", now, {"step": new.step}), *handed]


def _advance(state, action, now):
    _require_running(state)
    require_step(state, action.step)
    changes = {"step": state.step + 1, "exit_loop_step": None, "deadline_ms": None, "timer_remaining_ms": None}
    new = bump(state, now, visible=True, participants=_new_step_statuses(state), **changes)
    new, handed = _NEW_STEP[0](new, now)
    return new, [Event("advanced", now, {"from": state.step, "step": new.step}), *handed]


def _pause(state, action, now):
    _require_running(state)
    left = None if state.deadline_ms is None else max(0, state.deadline_ms - now)
    new = bump(state, now, visible=True, phase=PAUSED, deadline_ms=None, timer_remaining_ms=left)
    return new, [Event("paused", now, {"step": state.step})]


def _resume(state, action, now):
    require_started(state)
    if state.phase != PAUSED:
        raise GroupError("The group session is not paused.", code="not_paused")
    deadline = None if state.timer_remaining_ms is None else now + state.timer_remaining_ms
    new = bump(state, now, visible=True, phase=RUNNING, deadline_ms=deadline, timer_remaining_ms=None)
    return new, [Event("resumed", now, {"step": state.step})]


def _exit_loop(state, action, now):
    require_started(state)
    new = bump(state, now, visible=True, exit_loop_step=state.step)
    return new, [Event("exit_loop", now, {"step": state.step})]


def _end(state, action, now):
    require_started(state)
    return bump(state, now, visible=True, phase=ENDED), [Event("ended", now, {"step": state.step})]


def _abort(state, action, now):
    not_over(state)
    return bump(state, now, visible=True, phase=ABORTED), [Event("aborted", now, {"step": state.step})]


def _set_context(state, action, now):
    not_over(state)
    if not isinstance(action.patch, dict) or not all(isinstance(k, str) for k in action.patch):
        raise GroupError("A context patch is an object with string keys.", code="bad_patch")
    new = bump(state, now, visible=False)
    return new, [Event("context_set", now, {"patch": dict(action.patch)})]


def _kick(state, action, now):
    not_over(state)
    member(state, action.participant)
    new = bump(state, now, visible=True, participants=changed(state, action.participant, status=KICKED))
    events = [Event("kicked", now, {"participant": action.participant, "step": state.step})]
    if state.phase in (RUNNING, PAUSED) and not state.all_responded and new.all_responded:
        events.append(Event("all_responded", now, {"step": state.step}))
    return new, events


def _join(state, action, now):
    not_over(state)
    if action.participant in state.participants:
        raise GroupError(f"Participant {action.participant!r} already joined.", code="already_joined")
    participants = dict(state.participants)
    participants[action.participant] = Participant(joined_ms=now, offline_since_ms=now)
    new = bump(state, now, visible=True, participants=MappingProxyType(participants))
    return new, [Event("joined", now, {"participant": action.participant})]


def _connect(state, action, now):
    p = member(state, action.participant)
    changes = {"connections": p.connections + 1, "offline_since_ms": None}
    new = bump(state, now, visible=False, participants=changed(state, action.participant, **changes))
    return new, [Event("connected", now, {"participant": action.participant})] if not p.connected else []


def _disconnect(state, action, now):
    p = member(state, action.participant, allow_kicked=True)
    if p.connections == 0:
        return state, []
    changes = {"connections": p.connections - 1, "offline_since_ms": now if p.connections == 1 else p.offline_since_ms}
    new = bump(state, now, visible=False, participants=changed(state, action.participant, **changes))
    gone = not new.participants[action.participant].connected
    return new, [Event("disconnected", now, {"participant": action.participant})] if gone else []


def _locate(state, action, now):
    p = member(state, action.participant)
    status = p.status
    if p.responded_step != state.step and state.phase in (RUNNING, PAUSED) and status != FINISHED:
        status = ANSWERING
    if (p.form, p.status) == (action.form, status):
        return state, []
    new = bump(
        state, now, visible=False, participants=changed(state, action.participant, form=action.form, status=status)
    )
    return new, [Event("located", now, {"participant": action.participant, "form": action.form})]


def _ready(state, action, now):
    not_over(state)
    p = member(state, action.participant)
    require_step(state, action.step)
    if p.status in (READY, RESPONDED, FINISHED):
        return state, []
    new = bump(state, now, visible=True, participants=changed(state, action.participant, status=READY))
    return new, [Event("ready", now, {"participant": action.participant, "step": state.step})]


def _respond(state, action, now):
    require_started(state)
    p = member(state, action.participant)
    require_step(state, action.step)
    if p.responded_step == state.step:  # a second answer: refused (but see groups.flowcontrol)
        return _AGAIN[0](state, action, p, now)
    changes = {"responded_step": state.step, "status": RESPONDED}
    new = bump(state, now, visible=True, participants=changed(state, action.participant, **changes))
    events = [Event("responded", now, {"participant": action.participant, "step": state.step})]
    if new.all_responded:
        events.append(Event("all_responded", now, {"step": state.step}))
    return new, events


def _ack(state, action, now):
    p = member(state, action.participant, allow_kicked=True)
    if action.version > state.version or action.version < 0:
        raise GroupError(f"Version {action.version} was never sent.", code="bad_version")
    if action.version <= p.acked_version:
        return state, []
    new = bump(state, now, visible=False, participants=changed(state, action.participant, acked_version=action.version))
    return new, [Event("acked", now, {"participant": action.participant, "version": action.version})]


def _finish(state, action, now):
    p = member(state, action.participant)
    if p.status == FINISHED:
        return state, []
    new = bump(state, now, visible=True, participants=changed(state, action.participant, status=FINISHED))
    return new, [Event("finished", now, {"participant": action.participant})]


_HANDLERS = {
    Start: _start,
    Advance: _advance,
    Pause: _pause,
    Resume: _resume,
    ExitLoop: _exit_loop,
    End: _end,
    Abort: _abort,
    SetContext: _set_context,
    Kick: _kick,
    Join: _join,
    Connect: _connect,
    Disconnect: _disconnect,
    Locate: _locate,
    Ready: _ready,
    Respond: _respond,
    Ack: _ack,
    Finish: _finish,
}


# Extensions (groups.flowcontrol registers itself; this module imports nothing of it).
_EXTENSIONS: dict = {}  # action type -> handler
_NEW_STEP = [lambda state, now: (state, [])]  # (state, now) -> (state, events), at every start and advance


def answered_already(state, action, p, now):
    """A ``Respond`` to a step already answered: refused (the default; see ``extend``)."""
    raise GroupError("This step was already answered; a second answer is not stored.", code="already_answered")


_AGAIN = [answered_already]  # (state, action, participant, now) for a Respond to a step already answered


def extend(handlers: dict, *, new_step, answer_again=answered_already) -> None:
    _EXTENSIONS.update(handlers)
    _NEW_STEP[0], _AGAIN[0] = new_step, answer_again


def is_behind(state: GroupState, pid: str) -> bool:
    """The participant has not acknowledged the latest state it was sent."""
    return state.participants[pid].acked_version < state.participant_version
