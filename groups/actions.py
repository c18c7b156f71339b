"""Actions of the lockstep state machine (``groups.state.transition``): one frozen
dataclass per thing that can happen to a group session."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Advance:
    step: int


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class ExitLoop:
    pass


@dataclass(frozen=True)
class End:
    pass


@dataclass(frozen=True)
class Abort:
    pass


@dataclass(frozen=True)
class SetContext:
    patch: dict


@dataclass(frozen=True)
class Kick:
    participant: str


@dataclass(frozen=True)
class Join:
    participant: str


@dataclass(frozen=True)
class Connect:
    participant: str


@dataclass(frozen=True)
class Disconnect:
    participant: str


@dataclass(frozen=True)
class Locate:
    """The runner served ``form`` to the participant."""

    participant: str
    form: str


@dataclass(frozen=True)
class Ready:
    participant: str
    step: int


@dataclass(frozen=True)
class Respond:
    participant: str
    step: int


@dataclass(frozen=True)
class Ack:
    participant: str
    version: int


@dataclass(frozen=True)
class Finish:
    """The participant's run reached its end."""

    participant: str


Action = (
    Start
    | Advance
    | Pause
    | Resume
    | ExitLoop
    | End
    | Abort
    | SetContext
    | Kick
    | Join
    | Connect
    | Disconnect
    | Locate
    | Ready
    | Respond
    | Ack
    | Finish
)
