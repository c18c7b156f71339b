"""The lockstep state machine of a live group session, in pure Python.

``transition(state, action, now_ms=...) -> (new_state, events)`` is the only way a
group session changes. It touches no database, socket or clock: the services load
a ``GroupState`` from the rows (under a lock), apply one action, write the new
state back and publish it. Refusals raise ``GroupError`` with a machine ``code``.

Versions: ``version`` grows with every change (the console sees them all);
``participant_version`` is the ``version`` of the last change that participants
can see (phase, step, shared parameters, who answered). Acks, presence and form
locations change only what the experimenter sees, so participants are not asked to
re-acknowledge them; a participant is *behind* while ``acked_version <
participant_version``.
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

# Participant statuses (mirrors groups.models.Membership.Status).
JOINED, READY, ANSWERING, RESPONDED, FINISHED, KICKED = (
    "joined",
    "waiting",
    "answering",
    "responded",
    "finished",
    "kicked",
)
#: Statuses that no longer hold the group back (``Participant.active``; the store's
#: batched "who is still answering" statement takes them from here).
INACTIVE = frozenset({KICKED, FINISHED})


class GroupError(CodedError):
    """A refused group action. ``code`` is machine-readable (sent to sockets as is)."""


@dataclass(frozen=True)
class Participant:
    connections: int = 0
    status: str = JOINED
    form: str = ""
    responded_step: int | None = None
    acked_version: int = 0

    @property
    def connected(self) -> bool:
        return self.connections > 0

    @property
    def active(self) -> bool:
        """Still in the lockstep: neither removed nor finished with the run."""
        return self.status not in INACTIVE


@dataclass(frozen=True)
class GroupState:
    phase: str = WAITING
    step: int = 0
    version: int = 1
    participant_version: int = 1
    changed_ms: int = 0
    exit_loop_step: int | None = None
    participants: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        if not isinstance(self.participants, MappingProxyType):
            object.__setattr__(self, "participants", MappingProxyType(dict(self.participants)))

    @property
    def active(self) -> list[str]:
        return [pid for pid, p in self.participants.items() if p.active]

    @property
    def all_responded(self) -> bool:
        """True when every participant still in the group answered the current step,
        or when everyone finished the run; False with nobody in the group."""
        active = self.active
        if not active:
            return any(p.status == FINISHED for p in self.participants.values())
        return all(self.participants[p].responded_step == self.step for p in active)

    @property
    def ready_count(self) -> int:
        """Participants ready for what comes next: before the start, those on the
        waiting screen; afterwards, those who answered the current step."""
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


def _not_over(state: GroupState) -> None:
    if state.phase in TERMINAL:
        raise GroupError(f"The group session has {state.phase}.", code="ended")


def _require_started(state: GroupState) -> None:
    _not_over(state)
    if state.phase == WAITING:
        raise GroupError("The group session has not started yet.", code="not_started")


def _require_running(state: GroupState) -> None:
    _require_started(state)
    if state.phase != RUNNING:
        raise GroupError("The group session is paused.", code="not_running")


def _member(state: GroupState, pid: str, *, allow_kicked: bool = False) -> Participant:
    if pid not in state.participants:
        raise GroupError(f"No participant {pid!r} in this group session.", code="unknown_participant")
    participant = state.participants[pid]
    if not allow_kicked and participant.status == KICKED:
        raise GroupError(f"Participant {pid!r} was removed from the group session.", code="kicked")
    return participant


def _require_step(state: GroupState, step: int) -> None:
    if step != state.step:
        raise GroupError(f"Step {step} is not the current step ({state.step}).", code="stale_step")


# ---- the transition -------------------------------------------------------------


def _bump(state: GroupState, now_ms: int, *, visible: bool, **changes) -> GroupState:
    version = state.version + 1
    return replace(
        state,
        version=version,
        participant_version=version if visible else state.participant_version,
        changed_ms=now_ms,
        **changes,
    )


def _with(state: GroupState, pid: str, **changes) -> MappingProxyType:
    participants = dict(state.participants)
    participants[pid] = replace(participants[pid], **changes)
    return MappingProxyType(participants)


def _new_step_statuses(state: GroupState) -> MappingProxyType:
    """At a new step, everyone who was done with the old one is waiting again."""
    return MappingProxyType(
        {pid: (replace(p, status=READY) if p.status == RESPONDED else p) for pid, p in state.participants.items()}
    )


def transition(state: GroupState, action: Action, *, now_ms: int) -> tuple[GroupState, list[Event]]:
    """Apply ``action`` to ``state``; return the new state and what happened.

    Raises ``GroupError`` (nothing changes) with codes: ``not_started``,
    ``already_started``, ``not_running``, ``not_paused``, ``ended``, ``stale_step``,
    ``unknown_participant``, ``already_joined``, ``kicked``, ``bad_version``,
    ``bad_patch``, ``unknown_action``. A repeated ``Respond``/``Ack``/``Ready`` that
    changes nothing returns the state unchanged and no events (idempotent).
    """
    handler = _HANDLERS.get(type(action))
    if handler is None:
        raise GroupError(f"Unknown action {type(action).__name__}.", code="unknown_action")
    return handler(state, action, now_ms)


def _start(state, action, now):
    _not_over(state)
    if state.phase != WAITING:
        raise GroupError("The group session has already started.", code="already_started")
    new = _bump(state, now, visible=True, phase=RUNNING, participants=_new_step_statuses(state))
    return new, [Event("started", now, {"step": new.step})]


def _advance(state, action, now):
    _require_running(state)
    _require_step(state, action.step)
    new = _bump(
        state, now, visible=True, step=state.step + 1, exit_loop_step=None, participants=_new_step_statuses(state)
    )
    return new, [Event("advanced", now, {"from": state.step, "step": new.step})]


def _pause(state, action, now):
    _require_running(state)
    return _bump(state, now, visible=True, phase=PAUSED), [Event("paused", now, {"step": state.step})]


def _resume(state, action, now):
    _require_started(state)
    if state.phase != PAUSED:
        raise GroupError("The group session is not paused.", code="not_paused")
    return _bump(state, now, visible=True, phase=RUNNING), [Event("resumed", now, {"step": state.step})]


def _exit_loop(state, action, now):
    _require_started(state)
    new = _bump(state, now, visible=True, exit_loop_step=state.step)
    return new, [Event("exit_loop", now, {"step": state.step})]


def _end(state, action, now):
    _require_started(state)
    return _bump(state, now, visible=True, phase=ENDED), [Event("ended", now, {"step": state.step})]


def _abort(state, action, now):
    _not_over(state)
    return _bump(state, now, visible=True, phase=ABORTED), [Event("aborted", now, {"step": state.step})]


def _set_context(state, action, now):
    _not_over(state)
    if not isinstance(action.patch, dict) or not all(isinstance(k, str) for k in action.patch):
        raise GroupError("A context patch is an object with string keys.", code="bad_patch")
    new = _bump(state, now, visible=False)
    return new, [Event("context_set", now, {"patch": dict(action.patch)})]


def _kick(state, action, now):
    _not_over(state)
    _member(state, action.participant)
    new = _bump(state, now, visible=True, participants=_with(state, action.participant, status=KICKED))
    events = [Event("kicked", now, {"participant": action.participant, "step": state.step})]
    if state.phase in (RUNNING, PAUSED) and not state.all_responded and new.all_responded:
        events.append(Event("all_responded", now, {"step": state.step}))
    return new, events


def _join(state, action, now):
    _not_over(state)
    if action.participant in state.participants:
        raise GroupError(f"Participant {action.participant!r} already joined.", code="already_joined")
    participants = dict(state.participants)
    participants[action.participant] = Participant()
    new = _bump(state, now, visible=True, participants=MappingProxyType(participants))
    return new, [Event("joined", now, {"participant": action.participant})]


def _connect(state, action, now):
    p = _member(state, action.participant)
    new = _bump(state, now, visible=False, participants=_with(state, action.participant, connections=p.connections + 1))
    return new, [Event("connected", now, {"participant": action.participant})] if not p.connected else []


def _disconnect(state, action, now):
    p = _member(state, action.participant, allow_kicked=True)
    if p.connections == 0:
        return state, []
    new = _bump(state, now, visible=False, participants=_with(state, action.participant, connections=p.connections - 1))
    return new, [Event("disconnected", now, {"participant": action.participant})] if not new.participants[
        action.participant
    ].connected else []


def _locate(state, action, now):
    p = _member(state, action.participant)
    status = p.status
    if p.responded_step != state.step and state.phase in (RUNNING, PAUSED) and status != FINISHED:
        status = ANSWERING
    if (p.form, p.status) == (action.form, status):
        return state, []
    new = _bump(
        state, now, visible=False, participants=_with(state, action.participant, form=action.form, status=status)
    )
    return new, [Event("located", now, {"participant": action.participant, "form": action.form})]


def _ready(state, action, now):
    _not_over(state)
    p = _member(state, action.participant)
    _require_step(state, action.step)
    if p.status in (READY, RESPONDED, FINISHED):
        return state, []
    new = _bump(state, now, visible=True, participants=_with(state, action.participant, status=READY))
    return new, [Event("ready", now, {"participant": action.participant, "step": state.step})]


def _respond(state, action, now):
    _require_started(state)
    p = _member(state, action.participant)
    _require_step(state, action.step)
    if p.responded_step == state.step:
        return state, []
    new = _bump(
        state,
        now,
        visible=True,
        participants=_with(state, action.participant, responded_step=state.step, status=RESPONDED),
    )
    events = [Event("responded", now, {"participant": action.participant, "step": state.step})]
    if new.all_responded:
        events.append(Event("all_responded", now, {"step": state.step}))
    return new, events


def _ack(state, action, now):
    p = _member(state, action.participant, allow_kicked=True)
    if action.version > state.version or action.version < 0:
        raise GroupError(f"Version {action.version} was never sent.", code="bad_version")
    if action.version <= p.acked_version:
        return state, []
    new = _bump(state, now, visible=False, participants=_with(state, action.participant, acked_version=action.version))
    return new, [Event("acked", now, {"participant": action.participant, "version": action.version})]


def _finish(state, action, now):
    p = _member(state, action.participant)
    if p.status == FINISHED:
        return state, []
    new = _bump(state, now, visible=True, participants=_with(state, action.participant, status=FINISHED))
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


def is_behind(state: GroupState, pid: str) -> bool:
    """The participant has not acknowledged the latest state it was sent."""
    return state.participants[pid].acked_version < state.participant_version
