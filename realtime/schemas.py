"""Every WebSocket message of the group protocol (SPEC section 5), defined once.

Client -> server messages are parsed with ``parse_client_message`` through a
discriminated union on ``type``; unknown fields are refused (``extra="forbid"``).
``static/js/protocol.js`` mirrors this module; keep them in step.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, StrictBool, StrictInt, TypeAdapter, ValidationError

from project.core import jsonvalues

MAX_INT = 2**31 - 1  # steps and versions fit a database integer; larger ones are invalid
MAX_DEPTH = 32  # default nesting limit of a client message (settings.WS_MAX_JSON_DEPTH)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- experimenter -> server -----------------------------------------------------


class StartMsg(_Message):
    type: Literal["start"]


class AdvanceMsg(_Message):
    type: Literal["advance"]
    step: StrictInt = Field(ge=0, le=MAX_INT)


class PauseMsg(_Message):
    type: Literal["pause"]


class ResumeMsg(_Message):
    type: Literal["resume"]


class ExitLoopMsg(_Message):
    type: Literal["exit_loop"]


class EndMsg(_Message):
    type: Literal["end"]


class AbortMsg(_Message):
    type: Literal["abort"]


class SetContextMsg(_Message):
    type: Literal["set_context"]
    patch: dict[str, Any]


class KickMsg(_Message):
    type: Literal["kick"]
    participant: str = Field(min_length=1, max_length=32)


class ExtendTimerMsg(_Message):
    type: Literal["extend_timer"]
    step: StrictInt = Field(ge=0, le=MAX_INT)
    seconds: StrictInt = Field(ge=1, le=86400)


class StopTimerMsg(_Message):
    type: Literal["stop_timer"]
    step: StrictInt = Field(ge=0, le=MAX_INT)


class MoveOnMsg(_Message):
    type: Literal["move_on"]
    participant: str = Field(min_length=1, max_length=32)
    step: StrictInt = Field(ge=0, le=MAX_INT)


class SendBackMsg(_Message):
    type: Literal["send_back"]
    participant: str = Field(min_length=1, max_length=32)
    step: StrictInt = Field(ge=0, le=MAX_INT)


class ResendMsg(_Message):
    type: Literal["resend"]
    participant: str = Field(min_length=1, max_length=32)


# ---- participant -> server ------------------------------------------------------


class ReadyMsg(_Message):
    type: Literal["ready"]
    step: StrictInt = Field(ge=0, le=MAX_INT)


class AckMsg(_Message):
    type: Literal["ack"]
    version: StrictInt = Field(ge=0, le=MAX_INT)


class LocationMsg(_Message):
    """What the live page shows: ``form`` (a form name) at ``step``."""

    type: Literal["location"]
    form: str = Field(max_length=100)
    step: StrictInt = Field(ge=0, le=MAX_INT)


class OnsetMsg(_Message):
    """The onset the live page achieved for ``step``: ``at`` and ``ready_at`` on the server
    clock (ms since the epoch), ``late_ms`` how late (0: the content was ready in time),
    ``rtt_ms`` the round trip of the clock estimate the page used (both times are off by at
    most half of it), ``frame`` whether ``at`` is the time of the animation frame that
    showed the step (not a timer's or a stalled callback's own time)."""

    type: Literal["onset"]
    step: StrictInt = Field(ge=0, le=MAX_INT)
    at: FiniteFloat = Field(ge=0, le=2**53)
    late_ms: FiniteFloat = Field(ge=0, le=MAX_INT)
    ready_at: FiniteFloat | None = Field(default=None, ge=0, le=2**53)
    rtt_ms: FiniteFloat | None = Field(default=None, ge=0, le=MAX_INT)
    frame: StrictBool = False


class ClientErrorMsg(_Message):
    """A jsPsych error on the live page at ``step`` (logged; the console's step log)."""

    type: Literal["client_error"]
    step: StrictInt = Field(ge=0, le=MAX_INT)
    message: str = Field(max_length=500)


# ---- either -> server -----------------------------------------------------------


class PingMsg(_Message):
    """Clock offset estimation: ``t`` is the client's clock (ms); the server answers
    ``pong`` with ``t`` echoed and its own ``server_ms``."""

    type: Literal["ping"]
    t: FiniteFloat


ClientMessage = Annotated[
    StartMsg | AdvanceMsg | PauseMsg | ResumeMsg | ExitLoopMsg | EndMsg | AbortMsg | SetContextMsg | KickMsg
    | ExtendTimerMsg | StopTimerMsg | MoveOnMsg | SendBackMsg | ResendMsg
    | ReadyMsg | AckMsg | LocationMsg | OnsetMsg | ClientErrorMsg | PingMsg,
    Field(discriminator="type"),
]  # fmt: skip
_client_adapter = TypeAdapter(ClientMessage)

EXPERIMENTER_TYPES = frozenset(
    {"start", "advance", "pause", "resume", "exit_loop", "end", "abort", "set_context", "kick", "ping"}
    | {"extend_timer", "stop_timer", "move_on", "send_back", "resend"}  # flow control (issue 20)
)
PARTICIPANT_TYPES = frozenset({"ready", "ack", "location", "onset", "client_error", "ping"})
CLIENT_TYPES = EXPERIMENTER_TYPES | PARTICIPANT_TYPES


# ---- server -> client -----------------------------------------------------------


class ParticipantRow(_Message):
    id: str
    connected: bool
    status: str
    form: str
    responded_step: int | None
    acked_version: int
    behind: bool
    flag: str = ""  # flow control (issue 20): timed_out | skipped at this step
    dropped_at_ms: int | None = None
    bot: bool = False
    replaced_by: str = ""


class LobbyView(_Message):
    waiting_for: int  # arrivals still needed before the session starts
    placed: int
    min_size: int
    eta_seconds: int | None  # estimated from the arrival rate so far


class Timer(_Message):
    deadline_ms: int | None  # the step's countdown ends (server ms); count down on the corrected clock
    timer_remaining_ms: int | None  # while paused
    timed_out: bool


class Me(_Message):
    id: str
    status: str
    responded_step: int | None


class _StateBase(_Message):
    type: Literal["group.state"]
    version: int
    group_session: int
    phase: Literal["waiting", "running", "paused", "ended", "aborted"]
    step: int
    server_ms: int
    shared_params: dict[str, Any]
    exit_loop: bool
    run_url: str
    size: int | None
    ready: int
    active: int
    all_responded: bool
    timer: Timer
    lobby: LobbyView | None = None
    starts_at: int | None = None  # when the current step appears on every live page (server epoch ms)


class StepOnsets(_Message):
    step: int
    reported: int
    spread_ms: int
    late: list[str]


class StepLogEntry(_Message):
    at_ms: int
    action: str
    step: int
    by: str | None


class ExperimenterState(_StateBase):
    participant_version: int
    participants: list[ParticipantRow]
    context: dict[str, Any]
    context_store_down: bool = False  # the context store's copy could not be written (console notice)
    step_log: list[StepLogEntry]  # newest first, the latest GROUP_CONSOLE_LOG_ENTRIES
    onsets: list[StepOnsets] = []  # live page onsets of the latest steps, newest first


class ParticipantState(_StateBase):
    me: Me


class ContentMsg(_Message):
    """A step's content for the live page, sent once per step per socket (groups.live_content)."""

    type: Literal["group.content"] = "group.content"
    step: int
    order: int
    form: str
    title: str
    html: str
    timeline: list[Any] | dict[str, Any] | None
    preload: list[str] | None
    package: dict[str, Any] | None
    problem: str
    problem_code: str
    problem_title: str
    shared_params: dict[str, Any]
    loop_rounds: int | None


class ErrorMsg(_Message):
    type: Literal["error"] = "error"
    code: str
    message: str


class PongMsg(_Message):
    type: Literal["pong"] = "pong"
    t: FiniteFloat
    server_ms: int


# ---- parsing --------------------------------------------------------------------


class ProtocolError(Exception):
    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


def parse_client_message(text: str, *, allowed: frozenset[str] = CLIENT_TYPES, max_depth: int = MAX_DEPTH) -> BaseModel:
    """Parse one client frame. Raises ``ProtocolError`` with code ``bad_json`` (not a
    JSON object, or nested too deep to parse at all), ``unknown_type`` (no or unknown
    ``type``), ``not_allowed`` (a type this side may not send), ``bad_patch`` (a
    ``set_context`` patch the context cannot hold: see ``unfit_value``) or
    ``invalid_message`` (wrong or extra fields, or any of ``unfit_value``'s faults
    elsewhere in the message)."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ProtocolError(f"Messages are JSON objects nested at most {max_depth} deep.", code="bad_json") from None
    except (TypeError, ValueError):
        raise ProtocolError("Messages are JSON objects.", code="bad_json") from None
    if not isinstance(data, dict):
        raise ProtocolError("Messages are JSON objects.", code="bad_json")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ProtocolError(f"Unknown message type {_shown(kind)}.", code="unknown_type")
    if kind not in allowed:
        raise ProtocolError(f"This socket may not send {kind!r}.", code="not_allowed")
    fault = unfit_value(data, max_depth=max_depth)
    if fault is not None:
        where, problem = fault
        in_patch = kind == "set_context" and where[:1] == ("patch",) and len(where) > 1
        code = "bad_patch" if in_patch else "invalid_message"
        raise ProtocolError(f"Invalid {kind!r} message: {_path(where)}: {problem}", code=code)
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'message'}: {e['msg']}" for e in exc.errors())
        raise ProtocolError(f"Invalid {kind!r} message: {detail}", code="invalid_message") from None


_TEXT_PROBLEMS = {"nul": "contains a NUL character", "surrogate": "contains a lone surrogate (not Unicode text)"}


def unfit_value(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[tuple, str] | None:
    """The first part of a parsed JSON ``value`` that no client message may carry, as
    ``(path, problem)``, or None: nesting deeper than ``max_depth``, a number that is
    not finite (``NaN``, ``Infinity``, ``1e400``), or a string or key with a NUL
    character or a lone surrogate (PostgreSQL's ``jsonb`` stores neither, browsers
    cannot parse the former). ``project.core.jsonvalues.first_fault``: no recursion."""
    fault = jsonvalues.first_fault(value, max_depth=max_depth - 1, containers_only=True)
    if fault is None:
        return None
    if fault.kind == jsonvalues.TOO_DEEP:
        return fault.path, f"nested deeper than {max_depth} levels"
    if fault.kind == jsonvalues.NOT_FINITE:
        return fault.path, "numbers must be finite (no NaN or Infinity)"
    if fault.kind == jsonvalues.BAD_KEY_TEXT:
        return (*fault.path, fault.value), f"key {_TEXT_PROBLEMS[fault.text]}"
    if fault.kind == jsonvalues.BAD_TEXT:
        return fault.path, _TEXT_PROBLEMS[fault.text]
    return fault.path, "not a JSON value"  # (not from json.loads)


def _shown(value: Any, limit: int = 40) -> str:
    """A client's value in a message back to it: short, and printable (``repr``)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(where: tuple) -> str:
    return _shown(".".join(map(str, where)))[1:-1] if where else "message"


def error(code: str, message: str) -> dict:
    return ErrorMsg(code=code, message=message).model_dump()
