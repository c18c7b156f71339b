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


# ---- flow control (issue 20; transitions in groups/flowcontrol.py) ----------------


@dataclass(frozen=True)
class StartTimer:
    """The current step's countdown runs out at ``deadline_ms`` (its ``starts_at`` + timeout)."""

    step: int
    deadline_ms: int


@dataclass(frozen=True)
class TimeOut:
    """The step's timer ran out: close every open answer (``on_timeout``: submit | skip).
    A timer armed for another deadline than the state's (it was extended, stopped or
    paused since) changes nothing; so does one that fires before its deadline."""

    step: int
    on_timeout: str = "submit"
    deadline_ms: int | None = None  # the deadline the timer was armed for (None: the state's)


@dataclass(frozen=True)
class ExtendTimer:
    step: int
    seconds: float


@dataclass(frozen=True)
class StopTimer:
    step: int


@dataclass(frozen=True)
class MoveOn:
    """The console closes this participant's step as skipped."""

    participant: str
    step: int


@dataclass(frozen=True)
class SendBack:
    """The console reopens the current step for this participant."""

    participant: str
    step: int


@dataclass(frozen=True)
class Resend:
    """The console sends the state again (every participant re-acknowledges it)."""

    participant: str


@dataclass(frozen=True)
class DropOut:
    """The participant has been offline past ``dropout.after_seconds``."""

    participant: str
    after_ms: int
    policy: str = "continue"
    offline_since_ms: int | None = None  # the absence the timer was armed for (then trusted)


@dataclass(frozen=True)
class Arrive:
    """A participant came through the lobby: placed while there is room, else standby."""

    participant: str
    max_size: int


@dataclass(frozen=True)
class Release:
    """A lobby participant not placed after ``lobby.wait_seconds`` leaves with the code."""

    participant: str
    wait_ms: int
    joined_ms: int | None = None  # set by the release timer armed at the arrival: then trusted


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
    | StartTimer
    | TimeOut
    | ExtendTimer
    | StopTimer
    | MoveOn
    | SendBack
    | Resend
    | DropOut
    | Arrive
    | Release
)
