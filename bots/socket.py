"""A bot's participant socket, as ``static/js/protocol.js`` runs it: the run cookie and the
page's Origin, ``ack`` for each newer ``group.state``, ``ping`` on open, then by protocol.js's
clock rule (``realtime.clock``: quick pings while the best round trip is long, every 3 s, one
after each step's ``starts_at``), the clock offset from the pong with the shortest round trip,
reconnection with back-off (0.5 s doubling to 5 s) except after a final close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time

import websockets

from realtime import clock

FINAL = {4001, 4003, 4004, 4009, 4010}
KICKED = 4010
PING_SECONDS = clock.PING_MS / 1000
WS_ARGS = dict(compression=None, ping_interval=None, open_timeout=60, close_timeout=2, max_size=2**24)


def ping_text() -> str:
    """A ping stamped now on this clock (protocol.js)."""
    return json.dumps({"type": "ping", "t": time.time() * 1000})


def ping_later(ws, ms: float, held: set) -> None:
    """Send a ping ``ms`` from now (a quick or a quiet one, ``realtime.clock``); the task
    stays in ``held`` while it waits (the loop keeps only weak references)."""

    async def later():
        await asyncio.sleep(ms / 1000)
        with contextlib.suppress(Exception):
            await ws.send(ping_text())

    task = asyncio.create_task(later())
    held.add(task)
    task.add_done_callback(held.discard)


class ParticipantSocket:
    def __init__(self, url: str, headers: list[tuple[str, str]], *, on_state=None):
        self.url, self.headers, self.on_state = url, headers, on_state
        self.state: dict | None = None
        self.version = 0
        self.changed = asyncio.Event()
        self.closed_code: int | None = None  # a final close code: the page stops
        self.connects = 0
        self.drops = 0  # closes the socket did not ask for
        self.ws = None
        self.task: asyncio.Task | None = None
        self.state_arrival: dict[int, float] = {}  # step -> when the first running state of it arrived
        self.offset_ms: float | None = None  # this clock minus the server's, from the best pong
        self.rtt_ms: float | None = None
        self.contents: dict[int, dict] = {}  # step -> the live page's pushed group.content
        self.fast_sent, self.quiet_step = 0, None  # quick pings since the open; the step pinged after
        self._pings: set[asyncio.Task] = set()  # (held: the loop keeps only weak references)

    def open(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        self.task = None
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        self.ws = None

    async def send(self, message: dict) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send(json.dumps(message))

    async def _run(self) -> None:
        delay = 0.5
        while self.closed_code is None:
            try:
                async with websockets.connect(self.url, additional_headers=self.headers, **WS_ARGS) as ws:
                    self.ws, self.connects, delay = ws, self.connects + 1, 0.5
                    pinger = asyncio.create_task(self._pinger(ws))
                    try:
                        async for raw in ws:
                            await self._message(ws, raw)
                    finally:
                        pinger.cancel()
                    code = ws.close_code
            except (OSError, websockets.exceptions.WebSocketException, TimeoutError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
            self.ws = None
            if code in FINAL:
                self.closed_code = code
                self.changed.set()
                return
            self.drops += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _pinger(self, ws) -> None:
        self.fast_sent = 0
        while True:
            await ws.send(ping_text())
            await asyncio.sleep(PING_SECONDS)

    async def _message(self, ws, raw) -> None:
        data = json.loads(raw)
        kind = data.get("type")
        if kind == "pong":
            rtt = self._clock(data)
            if rtt is not None and (wait := clock.next_ping_ms(self.rtt_ms, self.fast_sent, rtt)) is not None:
                self.fast_sent += 1
                ping_later(ws, wait, self._pings)
        if kind == "group.content" and isinstance(data.get("step"), int):
            self.contents[data["step"]] = data
            self.changed.set()
        if kind != "group.state" or data.get("version", 0) <= self.version:
            return
        self.version = data["version"]
        await ws.send(json.dumps({"type": "ack", "version": data["version"]}))
        if data.get("starts_at") is not None and data.get("step") != self.quiet_step:  # protocol.js quietPing
            self.quiet_step = data.get("step")
            wait = clock.quiet_ping_ms(data["starts_at"], -(self.offset_ms or 0), time.time() * 1000, random.random())
            if wait is not None:
                ping_later(ws, wait, self._pings)
        if data.get("phase") == "running":
            self.state_arrival.setdefault(int(data.get("step", 0)), time.monotonic())
        self.state = data
        if self.on_state is not None:
            await self.on_state(data, self)
        self.changed.set()

    def _clock(self, pong: dict) -> float | None:
        try:
            offset, rtt = clock.sample(float(pong["t"]), time.time() * 1000, float(pong["server_ms"]))
        except (KeyError, TypeError, ValueError):
            return None
        if clock.better(self.rtt_ms, rtt):
            self.rtt_ms, self.offset_ms = rtt, -offset  # this clock minus the server's
        return rtt

    async def wait(self, predicate, timeout: float) -> bool:
        """Wait until ``predicate(state)`` holds or the socket is closed for good."""
        deadline = time.monotonic() + timeout
        while True:
            if self.closed_code is not None or (self.state is not None and predicate(self.state)):
                return True
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
