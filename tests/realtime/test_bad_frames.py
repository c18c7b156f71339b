"""Frames that used to kill a socket or reach the browser unparseable (issue 14),
through the real router: each is refused with a machine code, the socket stays open,
nothing changes, and presence stays right."""

from __future__ import annotations

import json
import logging

import pytest

from groups import selectors
from realtime import consumers

from .conftest import communicator
from .test_consumers import next_of, state_where

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "[" * 50000  # 49 KB: under WS_MAX_MESSAGE_BYTES, far over the parser's recursion limit


def _row(state, pseudonym):
    return next(p for p in state["participants"] if p["id"] == pseudonym)


async def _refused(comm, frame: str, code: str) -> dict:
    await comm.send_to(text_data=frame)
    message = await next_of(comm, "error")
    assert message["code"] == code, (frame[:80], message)
    return message


async def _still_answers(comm):
    await comm.send_json_to({"type": "ping", "t": 42})
    assert (await next_of(comm, "pong"))["t"] == 42


async def test_deeply_nested_json_keeps_the_socket_and_presence(world, call):
    boss = world.experimenter()
    await boss.connect()
    ann = world.participant(0)
    await ann.connect()
    await next_of(ann, "group.state")
    await state_where(boss, lambda s: _row(s, world.pseudonyms[0])["connected"])
    refusal = await _refused(ann, DEEP, "bad_json")  # was: RecursionError, close 1011
    assert "nested" in refusal["message"]
    await _refused(ann, '{"type": "ack", "version": ' + DEEP, "bad_json")
    await _still_answers(ann)
    await ann.disconnect()
    await state_where(boss, lambda s: not _row(s, world.pseudonyms[0])["connected"])
    await boss.disconnect()


async def test_deeply_nested_set_context_patches_are_refused(world, call):
    boss = world.experimenter()
    await boss.connect()
    before = await next_of(boss, "group.state")
    await _refused(boss, '{"type": "set_context", "patch": {"a": ' + DEEP, "bad_json")
    deep_but_parseable = {"type": "set_context", "patch": {"a": json.loads("[" * 40 + "]" * 40)}}
    refusal = await _refused(boss, json.dumps(deep_but_parseable), "bad_patch")
    assert "nested deeper than 32 levels" in refusal["message"]
    await _still_answers(boss)
    assert await call(selectors.snapshot, group_session_id=world.gs.pk) == before
    await boss.disconnect()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
async def test_pong_never_echoes_a_non_finite_number(world, number):
    ann = world.participant(0)
    await ann.connect()
    await next_of(ann, "group.state")
    refusal = await _refused(ann, '{"type": "ping", "t": ' + number + "}", "invalid_message")
    assert "finite" in refusal["message"]
    await _still_answers(ann)  # the next pong is the first one: no pong for the refused ping
    await ann.disconnect()


def test_frames_on_the_wire_are_never_non_finite(world):
    from groups.store import wire_body

    state = selectors.snapshot(world.gs.pk)
    wire_body(state)
    for where in ("context", "shared_params"):
        with pytest.raises(ValueError):
            wire_body({**state, where: {"x": float("nan")}})
    with pytest.raises(ValueError):
        consumers.PongMsg(t=float("inf"), server_ms=1)


@pytest.mark.parametrize(
    "patch, where",
    [
        ({"note\x00": 1}, "patch.note\\x00: key contains a NUL"),
        ({"note": "a\x00b"}, "patch.note: contains a NUL"),
        ({"note": ["ok", "\ud800"]}, "patch.note.1: contains a lone surrogate"),
        ({"\udfff": 1}, "key contains a lone surrogate"),
    ],
)
async def test_patches_postgresql_cannot_store_are_refused(world, call, patch, where):
    boss = world.experimenter()
    await boss.connect()
    before = await next_of(boss, "group.state")
    refusal = await _refused(boss, json.dumps({"type": "set_context", "patch": patch}), "bad_patch")
    assert where in refusal["message"]
    await _still_answers(boss)
    assert await call(selectors.snapshot, group_session_id=world.gs.pk) == before
    await boss.disconnect()


@pytest.mark.parametrize(
    "side, message",
    [
        ("experimenter", {"type": "advance", "step": 2**31}),
        ("experimenter", {"type": "advance", "step": 10**40}),
        ("participant", {"type": "ack", "version": 2**63}),
        ("participant", {"type": "ready", "step": 2**31}),
    ],
)
async def test_numbers_no_database_column_holds_are_invalid(world, call, side, message):
    comm = world.experimenter() if side == "experimenter" else world.participant(0)
    await comm.connect()
    await next_of(comm, "group.state")
    before = await call(selectors.snapshot, group_session_id=world.gs.pk)
    await _refused(comm, json.dumps(message), "invalid_message")
    assert (await call(selectors.snapshot, group_session_id=world.gs.pk))["version"] == before["version"]
    await comm.disconnect()


async def test_a_failure_inside_the_consumer_closes_4011_after_its_bookkeeping(world, monkeypatch, caplog):
    """Whatever escapes (here a broken parser), the socket is closed with a code the
    client reconnects after, and it no longer counts as connected (was: the exception
    ended the consumer, daphne closed 1011, and the membership stayed connected)."""
    boss = world.experimenter()
    await boss.connect()
    ann = world.participant(0)
    await ann.connect()
    await next_of(ann, "group.state")
    await state_where(boss, lambda s: _row(s, world.pseudonyms[0])["connected"])

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(consumers, "parse_client_message", broken)
    with caplog.at_level(logging.ERROR, logger="realtime.consumers"):
        await ann.send_json_to({"type": "ping", "t": 1})
        while (output := await ann.receive_output(timeout=3))["type"] != "websocket.close":
            pass
    assert output["code"] == consumers.CLOSE_INTERNAL
    assert "a bug" in caplog.text  # logged, with its traceback, for us to fix
    await state_where(boss, lambda s: not _row(s, world.pseudonyms[0])["connected"])
    await ann.disconnect()
    await boss.disconnect()


async def test_unknown_paths_are_refused_without_the_channel_layer(settings):
    """A channel layer that cannot be reached (Redis down) does not matter to a socket
    that is only refused (was: the refusal's consumer opened a channel and waited on
    Redis for it, a traceback when Redis timed out)."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}
    }
    comm = communicator("/ws/nowhere/")
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from())["code"] == "not_found"
    assert await comm.receive_output(timeout=2) == {"type": "websocket.close", "code": 4004}
    assert await comm.receive_nothing(timeout=0.5)
    await comm.disconnect()  # raises what the consumer raised, if anything
