"""The bad-input matrix of the group sockets (issue 14), through the real router.

Every client message type of both sockets (``realtime.schemas``) is sent malformed,
oversized, nested, non-finite, with NUL or a lone surrogate, and from the side that
may not send it; then the unauthorised cases (another group session, forged
participant ids, stale steps, versions never sent). Each case expects a refusal (an
``error`` with its machine code, the socket left open; or a 4xxx close) and no change
of state: the group session row, its memberships, step log, responses and the
context store read the same after as before (presence fields aside when the socket
was closed, and then it shows as disconnected)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.forms.models import model_to_dict

from groups import selectors, services
from groups.context import get_store
from groups.models import GroupSession, Membership, StepLog
from realtime.schemas import EXPERIMENTER_TYPES, PARTICIPANT_TYPES
from runner.models import Response
from tests.realtime.conftest import World, communicator, fresh_channel_layer  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "[" * 50000
NESTED_40 = json.loads("[" * 40 + "]" * 40)
PRESENCE_FIELDS = {"connections", "acked_version", "version", "participant_version", "changed_ms"}

# One valid message per type; "{P1}" is the second participant's pseudonym.
VALID: dict[str, dict] = {
    "start": {"type": "start"},
    "advance": {"type": "advance", "step": 0},
    "pause": {"type": "pause"},
    "resume": {"type": "resume"},
    "exit_loop": {"type": "exit_loop"},
    "end": {"type": "end"},
    "abort": {"type": "abort"},
    "set_context": {"type": "set_context", "patch": {"k": 1}},
    "kick": {"type": "kick", "participant": "{P1}"},
    "ping": {"type": "ping", "t": 1.5},
    "ready": {"type": "ready", "step": 0},
    "ack": {"type": "ack", "version": 0},
    "extend_timer": {"type": "extend_timer", "step": 0, "seconds": 5},
    "stop_timer": {"type": "stop_timer", "step": 0},
    "move_on": {"type": "move_on", "participant": "{P1}", "step": 0},
    "send_back": {"type": "send_back", "participant": "{P1}", "step": 0},
    "resend": {"type": "resend", "participant": "{P1}"},
    "location": {"type": "location", "form": "trial", "step": 0},
    "onset": {"type": "onset", "step": 0, "at": 1.5, "late_ms": 0, "ready_at": 1.0},
    "client_error": {"type": "client_error", "step": 0, "message": "x"},
}
FIELD = {
    "advance": "step",
    "set_context": "patch",
    "kick": "participant",
    "ping": "t",
    "ready": "step",
    "ack": "version",
    "extend_timer": "step",
    "stop_timer": "step",
    "move_on": "participant",
    "send_back": "participant",
    "resend": "participant",
    "location": "step",
    "onset": "step",
    "client_error": "step",
}
WRONG_TYPE = {"step": "zero", "patch": [1], "participant": 5, "t": "now", "version": True}


@dataclass(frozen=True)
class Case:
    side: str  # "experimenter" | "participant"
    frame: Any  # dict (JSON-encoded, NaN allowed), str (sent as is) or bytes (a binary frame)
    error: str | None = None  # expected error code, the socket staying open
    close: int | None = None  # or: expected close code

    def encoded(self, world: World) -> str | bytes:
        if isinstance(self.frame, bytes | str):
            return self.frame
        return json.dumps(self.frame).replace("{P1}", world.pseudonyms[1])


def side_of(kind: str) -> str:
    return "participant" if kind in PARTICIPANT_TYPES else "experimenter"


def _with(kind: str, value) -> dict:
    """The valid message of ``kind`` with its field (or an extra field ``x``) set to ``value``."""
    return {**VALID[kind], FIELD.get(kind, "x"): value}


def _in_patch_or_field(kind: str, value, code: str = "invalid_message") -> tuple[dict, str]:
    if kind == "set_context":
        return {**VALID[kind], "patch": {"k": value}}, "bad_patch"
    return _with(kind, value), code


def variants(kind: str) -> dict[str, Case]:
    side, valid = side_of(kind), VALID[kind]
    text = json.dumps(valid)
    cases = {
        "extra field": Case(side, {**valid, "x": 1}, "invalid_message"),
        "truncated JSON": Case(side, text[:-1], "bad_json"),
        "not an object": Case(side, json.dumps([valid]), "bad_json"),
        "binary frame": Case(side, text.encode(), "bad_json"),
        "oversized": Case(side, {**valid, "x": "a" * settings.WS_MAX_MESSAGE_BYTES}, close=4009),
        "nested 50000 deep": Case(side, text[:-1] + ', "x": ' + DEEP, "bad_json"),
        "nested 40 deep": Case(side, *_in_patch_or_field(kind, NESTED_40)),
        "NaN": Case(side, *_in_patch_or_field(kind, float("nan"))),
        "Infinity": Case(side, text[:-1] + ', "x": 1e400}', "invalid_message"),
        "NUL in type": Case(side, {**valid, "type": kind + "\x00"}, "unknown_type"),
        "NUL in a string": Case(side, *_in_patch_or_field(kind, "a\x00b")),
        "lone surrogate": Case(side, *_in_patch_or_field(kind, "\ud800")),
    }
    if kind == "set_context":
        cases["NUL in a key"] = Case(side, {**valid, "patch": {"k\x00": 1}}, "bad_patch")
        cases["non-finite in a patch list"] = Case(side, text[:-2] + ', "l": [1, -Infinity]}}', "bad_patch")
    if kind in FIELD:
        cases["missing field"] = Case(side, {"type": kind}, "invalid_message")
        cases["wrong field type"] = Case(side, _with(kind, WRONG_TYPE[FIELD[kind]]), "invalid_message")
    if FIELD.get(kind) in ("step", "version"):
        cases["huge number"] = Case(side, _with(kind, 10**40), "invalid_message")
        cases["negative"] = Case(side, _with(kind, -1), "invalid_message")
    if kind != "ping":
        other = "experimenter" if side == "participant" else "participant"
        cases["sent by the other side"] = Case(other, valid, "not_allowed")
    return cases


MATRIX = {f"{kind}: {name}": case for kind in VALID for name, case in variants(kind).items()}
UNAUTHORISED = {
    "kick: forged participant id": Case(
        "experimenter", {"type": "kick", "participant": "PFORGED"}, "unknown_participant"
    ),
    "kick: participant of another group session": Case(
        "experimenter", {"type": "kick", "participant": "{OTHER}"}, "unknown_participant"
    ),
    "move_on: forged participant id": Case(
        "experimenter", {"type": "move_on", "participant": "PFORGED", "step": 0}, "unknown_participant"
    ),
    "resend: participant of another group session": Case(
        "experimenter", {"type": "resend", "participant": "{OTHER}"}, "unknown_participant"
    ),
    "extend_timer: no timer at this step": Case(
        "experimenter", {"type": "extend_timer", "step": 0, "seconds": 5}, "no_timer"
    ),
    "extend_timer: zero seconds": Case(
        "experimenter", {"type": "extend_timer", "step": 0, "seconds": 0}, "invalid_message"
    ),
    "send_back: not answered": Case(
        "experimenter", {"type": "send_back", "participant": "{P1}", "step": 0}, "not_responded"
    ),
    "advance: stale step": Case("experimenter", {"type": "advance", "step": 5}, "stale_step"),
    "ready: a step that is not current": Case("participant", {"type": "ready", "step": 3}, "stale_step"),
    "ack: a version never sent": Case("participant", {"type": "ack", "version": 10**6}, "bad_version"),
    "unknown type": Case("participant", {"type": "launch"}, "unknown_type"),
}


def test_the_matrix_covers_every_message_type():
    assert {key.split(":")[0] for key in MATRIX} == EXPERIMENTER_TYPES | PARTICIPANT_TYPES


@pytest.fixture(name="world")
def world_fixture(transactional_db, monkeypatch):
    """Two participants, an experimenter, a running group session with some context;
    and another group session with a participant of its own."""
    monkeypatch.setattr(services, "READY_FLUSH_SECONDS", 0)  # as tests/realtime's world: no late join frame
    world = World()
    services.group_session_start(group_session=world.gs, by=world.staff)
    services.group_session_set_context(group_session=world.gs, patch={"seed": [1, "two"]}, by=world.staff)
    from runner.models import Ticket
    from tests.factories import SessionFactory

    ticket = Ticket.objects.get(pk=world.other_gs.ticket_id)
    other = SessionFactory(experiment=world.experiment, ticket=ticket)
    world.other_pseudonym = services.attach_participant(session=other, ticket=ticket).pseudonym
    return world


def state_of(gs_id: int) -> dict:
    """Everything a socket message could change, as plain data."""
    gs = GroupSession.objects.get(pk=gs_id)
    return {
        "group_session": model_to_dict(gs),
        "memberships": [model_to_dict(m) for m in Membership.objects.filter(group_session_id=gs_id).order_by("pk")],
        "step_log": list(StepLog.objects.filter(group_session_id=gs_id).order_by("pk").values()),
        "responses": list(Response.objects.filter(group_session_id=gs_id).order_by("pk").values()),
        "context": get_store().get(gs_id),
    }


async def connected_as(world, pseudonym: str, want: bool) -> bool:
    for _ in range(50):
        state = await database_sync_to_async(selectors.snapshot)(group_session_id=world.gs.pk)
        if next(p for p in state["participants"] if p["id"] == pseudonym)["connected"] == want:
            return True
        await asyncio.sleep(0.1)
    return False


async def open_socket(world, side: str):
    comm = world.experimenter() if side == "experimenter" else world.participant(0)
    connected, _ = await comm.connect()
    assert connected
    first = await comm.receive_json_from(timeout=3)
    assert first["type"] == "group.state"  # for a participant: its connection is recorded
    return comm


async def refusal_of(comm, frame) -> dict:
    """The first error or close after sending ``frame`` (states and pongs skipped)."""
    await (comm.send_to(bytes_data=frame) if isinstance(frame, bytes) else comm.send_to(text_data=frame))
    while True:
        output = await comm.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            return {"close": output["code"]}
        message = json.loads(output["text"])
        if message["type"] == "error":
            return message


async def check_refused(world, case: Case, frame) -> None:
    comm = await open_socket(world, case.side)
    before = await database_sync_to_async(state_of)(world.gs.pk)
    refusal = await refusal_of(comm, frame)
    if case.close is not None:
        assert refusal == {"close": case.close}
        await comm.disconnect()
        after = await database_sync_to_async(state_of)(world.gs.pk)
        assert without_presence(after) == without_presence(before)
        if case.side == "participant":
            assert await connected_as(world, world.pseudonyms[0], False)
        return
    assert refusal.get("code") == case.error, refusal
    assert refusal["message"] and len(refusal["message"]) < 500
    await comm.send_json_to({"type": "ping", "t": 7})  # still open, still answering
    while (await comm.receive_json_from(timeout=3))["type"] != "pong":
        pass
    assert await database_sync_to_async(state_of)(world.gs.pk) == before
    await comm.disconnect()
    if case.side == "participant":
        assert await connected_as(world, world.pseudonyms[0], False)


def without_presence(state: dict) -> dict:
    """``state`` without what opening and closing a socket changes."""

    def strip(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in PRESENCE_FIELDS}

    return {**state, "group_session": strip(state["group_session"]), "memberships": [*map(strip, state["memberships"])]}


async def run_cases(world, cases: dict[str, Case]) -> None:
    """Every case on a fresh socket of the same group session (refusals change nothing,
    so the next case starts from the same state); all failures reported together."""
    failures = []
    for name, case in cases.items():
        frame = case.encoded(world)
        if isinstance(frame, str):
            frame = frame.replace("{OTHER}", world.other_pseudonym)
        try:
            await check_refused(world, case, frame)
        except Exception as exc:  # noqa: BLE001 - collected, reported below
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("kind", VALID)
async def test_bad_messages_are_refused_and_change_nothing(world, kind):
    await run_cases(world, {name: case for name, case in MATRIX.items() if name.startswith(f"{kind}: ")})


async def test_unauthorised_messages_are_refused_and_change_nothing(world):
    await run_cases(world, UNAUTHORISED)


WRONG_SOCKETS = {
    "experimenter of another group session": 4003,
    "participant of another group session": 4003,
    "forged run cookie": 4001,
    "no login": 4001,
    "unknown group session": 4004,
}


async def test_sockets_of_the_wrong_group_session_are_refused(world):
    before = await database_sync_to_async(state_of)(world.gs.pk)
    other_before = await database_sync_to_async(state_of)(world.other_gs.pk)
    for who, close in WRONG_SOCKETS.items():
        await _refused_socket(world, who, close)
    assert await database_sync_to_async(state_of)(world.gs.pk) == before
    assert await database_sync_to_async(state_of)(world.other_gs.pk) == other_before


async def _refused_socket(world, who: str, close: int) -> None:
    comm = {
        "experimenter of another group session": lambda: world.experimenter(gs=world.other_gs),
        "participant of another group session": lambda: world.participant(0, gs=world.other_gs),
        "forged run cookie": lambda: communicator(
            f"/ws/group/{world.gs.pk}/participant/", {world.cookie_name: "forged"}
        ),
        "no login": lambda: communicator(f"/ws/group/{world.gs.pk}/experimenter/"),
        "unknown group session": lambda: communicator("/ws/group/999999/experimenter/", world.staff_cookies()),
    }[who]()
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from())["type"] == "error"
    assert await comm.receive_output(timeout=2) == {"type": "websocket.close", "code": close}, who
    await comm.disconnect()
