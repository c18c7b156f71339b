"""A property-based fuzzer of the group-socket protocol (issue 14).

Hypothesis sends random frames (random JSON, message-like objects with random field
values, deep nesting, huge numbers, unicode, NUL, lone surrogates, binary and
oversized frames) to an experimenter and a participant socket of one running group
session, through the real router (``realtime.asgi``), for ``FUZZ_SECONDS`` (env,
default 60) in runs of ``FUZZ_EXAMPLES`` examples. After every frame it checks:

- the consumer is alive: every frame is answered (a sentinel ping gets its pong) or
  the socket is closed with 4009 because the frame was too large; never 1011, never
  an exception out of the consumer;
- everything the server sent is strict JSON (no NaN or Infinity);
- a refused frame (an ``error``) changed nothing (``state_of``: group session row,
  memberships, step log, responses, context store);
and after every example: the participant shows as connected exactly while its
socket is open, the context store and its database checkpoint hold the same JSON
(compared as decimal numbers: see ``_as_decimals``), and
nothing was logged at ERROR (no traceback). Schema-valid messages with random values
are a quarter of the frames, so the accepting paths are exercised too.

``end`` and ``abort`` are only sent malformed (a valid one would end the session and
leave every later frame refused ``ended``); the participant holding the socket is
never kicked (the other one may be).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from decimal import Decimal

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from groups import selectors
from realtime.broadcast import get_hub
from realtime.schemas import CLIENT_TYPES

from .test_socket_matrix import World, fresh_channel_layer, state_of, world_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "60"))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

# ---- frames ------------------------------------------------------------------------

odd_chars = st.sampled_from(["\x00", "\ud800", "\udfff", "\u2028", "\ufeff", "\U0001f600", '"', "\\", "\n"])
texts = st.text(st.characters() | odd_chars, max_size=16)
numbers = st.integers() | st.floats() | st.sampled_from([2**31, 2**63, -(2**63), 10**40, 10**300, -1, 0, 1e308])
leaves = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=16
)
FIELDS = ["step", "version", "patch", "participant", "t", "type"]
field_values = {
    "step": st.integers(-2, 4) | numbers,
    "version": st.integers(-2, 50) | numbers,
    "patch": st.dictionaries(texts, json_values, max_size=4) | json_values,
    "participant": st.sampled_from(["{P1}", "PFORGED", "", "{P1}\x00", "x" * 40]) | texts,
    "t": numbers,
}
SENDABLE = sorted(CLIENT_TYPES - {"end", "abort"})


@st.composite
def message_like(draw) -> dict:
    """A message of a known type whose fields are drawn at random (maybe valid)."""
    kind = draw(st.sampled_from(SENDABLE) | texts)
    message = {"type": kind}
    for name in draw(st.lists(st.sampled_from(FIELDS[:-1]) | texts, max_size=3, unique=True)):
        message[name] = draw(field_values.get(name, json_values))
    return message


patch_keys = texts | st.sampled_from(["__exists", "seed", "", "k"])
valid_messages = st.one_of(
    st.sampled_from([{"type": kind} for kind in ("start", "pause", "resume", "exit_loop")]),
    st.builds(lambda step: {"type": "advance", "step": step}, st.integers(0, 3)),
    st.builds(
        lambda patch: {"type": "set_context", "patch": patch},
        st.dictionaries(patch_keys, json_values | st.none(), max_size=3),
    ),
    st.just({"type": "kick", "participant": "{P1}"}),
    st.builds(lambda step: {"type": "ready", "step": step}, st.integers(0, 3)),
    st.builds(lambda version: {"type": "ack", "version": version}, st.integers(0, 30)),
    st.builds(lambda t: {"type": "ping", "t": t}, st.floats(allow_nan=False, allow_infinity=False)),
)


def _encode(value, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)  # NaN and Infinity written as such


def _nested(depth: int, opener: str) -> str:
    return opener * depth


LIMIT = settings.WS_MAX_MESSAGE_BYTES
frames = st.one_of(
    st.builds(_encode, valid_messages, st.booleans()),
    st.builds(_encode, valid_messages, st.booleans()),
    st.builds(_encode, message_like(), st.booleans()),
    st.builds(_encode, message_like(), st.booleans()),
    st.builds(_encode, json_values, st.booleans()),
    st.builds(_nested, st.integers(1, 60000), st.sampled_from(["[", "{", '{"a":', "[{"])),
    st.builds(
        lambda depth, kind: '{"type": "' + kind + '", "patch": {"a": ' + "[" * depth,
        st.integers(30, 20000),
        st.sampled_from(["set_context", "ready"]),
    ),
    texts,
    st.binary(max_size=64),
    st.builds(lambda n: '{"type": "ping", "t": 1, "x": "' + "a" * n + '"}', st.integers(LIMIT - 40, LIMIT + 40)),
)
examples = st.lists(st.tuples(st.sampled_from(["experimenter", "participant"]), frames), min_size=1, max_size=6)


# ---- the harness --------------------------------------------------------------------


def _strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"the server sent {token}, which browsers cannot parse: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def _as_decimals(value):
    """``value`` with every number as the decimal it denotes: PostgreSQL's ``jsonb`` keeps
    a number's decimal value but not its Python type (the float ``8.6e+44`` comes back
    as the int ``860000...``), which is the same JSON number."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


class Harness:
    def __init__(self, world: World):
        self.world = world
        self.sockets: dict[str, object] = {}
        self.tag = 0
        self.frames = self.refused = self.closed = 0

    async def open(self, side: str):
        if side not in self.sockets:
            comm = self.world.experimenter() if side == "experimenter" else self.world.participant(0)
            connected, _ = await comm.connect()
            assert connected
            first = _strict_json((await comm.receive_output(timeout=5))["text"])
            assert first["type"] == "group.state", first
            self.sockets[side] = comm
        return self.sockets[side]

    async def answer(self, side: str) -> tuple[list[str], int | None]:
        """Send a sentinel ping; return the error codes seen before its pong, or the close code."""
        comm = self.sockets[side]
        self.tag += 1
        await comm.send_to(text_data=json.dumps({"type": "ping", "t": self.tag}))
        codes = []
        while True:
            output = await comm.receive_output(timeout=5)  # raises what a dead consumer raised
            if output["type"] == "websocket.close":
                await comm.disconnect()
                del self.sockets[side]
                return codes, output["code"]
            message = _strict_json(output["text"])
            if message["type"] == "error":
                codes.append(message["code"])
            elif message["type"] == "pong" and message["t"] == self.tag:
                return codes, None

    async def send(self, side: str, frame) -> None:
        comm = await self.open(side)
        await get_hub().drain()  # pending acks and presence written: `before` is settled
        before = await asyncio.to_thread(state_of, self.world.gs.pk)
        if isinstance(frame, bytes):  # (send_input: the communicator's send_to refuses empty frames)
            await comm.send_input({"type": "websocket.receive", "bytes": frame})
        else:
            frame = frame.replace("{P1}", self.world.pseudonyms[1])
            await comm.send_input({"type": "websocket.receive", "text": frame})
        codes, closed = await self.answer(side)
        self.frames += 1
        size = len(frame) if isinstance(frame, bytes) else len(frame.encode("utf-8", "surrogatepass"))
        if closed is not None:
            self.closed += 1
            assert closed == 4009 and size > LIMIT, f"closed {closed} after a frame of {size} bytes: {frame[:200]!r}"
            return
        assert size <= LIMIT, f"a frame of {size} bytes was not refused with 4009"
        if codes:
            self.refused += 1
            await get_hub().drain()
            after = await asyncio.to_thread(state_of, self.world.gs.pk)
            assert after == before, f"refused ({codes}) but changed the state: {frame[:200]!r}"

    async def check_presence(self) -> None:
        for side in list(self.sockets):  # keep both alive (the presence timeout) and answering
            assert (await self.answer(side))[1] is None
        await get_hub().drain()
        state = await asyncio.to_thread(selectors.snapshot, self.world.gs.pk)
        shown = {p["id"]: p["connected"] for p in state["participants"]}
        assert shown[self.world.pseudonyms[0]] == ("participant" in self.sockets), shown
        assert shown[self.world.pseudonyms[1]] is False, shown
        stored = await asyncio.to_thread(state_of, self.world.gs.pk)  # the context store and its checkpoint agree
        if stored["context"] is not None:
            assert _as_decimals(stored["context"]) == _as_decimals(stored["group_session"]["context"]), stored

    async def close(self) -> None:
        for comm in self.sockets.values():
            await comm.disconnect()
        self.sockets.clear()
        await get_hub().drain()


def test_random_frames_never_break_a_socket(world, caplog):
    caplog.set_level(logging.WARNING)
    loop = asyncio.new_event_loop()
    harness = Harness(world)

    @hsettings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(examples)
    def run(example):
        async def go():
            for side, frame in example:
                await harness.send(side, frame)
            await harness.check_presence()

        loop.run_until_complete(go())
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not errors, "\n".join(f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}" for r in errors[:3])

    started = time.monotonic()
    try:
        while time.monotonic() - started < FUZZ_SECONDS:
            run()
        loop.run_until_complete(harness.close())
        state = selectors.snapshot(world.gs.pk)
        assert not any(p["connected"] for p in state["participants"]), state["participants"]
    finally:
        print(
            f"\nfuzz: {time.monotonic() - started:.1f} s, {harness.frames} frames "
            f"({harness.refused} refused, {harness.closed} closed 4009)"
        )
        try:
            loop.run_until_complete(harness.close())
        finally:
            loop.close()
