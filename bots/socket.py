"""A bot's participant socket, as ``static/js/protocol.js`` runs it: the run cookie and the
page's Origin, ``ack`` for each newer ``group.state``, ``ping`` on open and every 3 s,
reconnection with back-off (0.5 s doubling to 5 s) except after a final close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import websockets

FINAL = {4001, 4003, 4004, 4009, 4010}
KICKED = 4010
PING_SECONDS = 3.0
WS_ARGS = dict(compression=None, ping_interval=None, open_timeout=60, close_timeout=2, max_size=2**24)


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
        while True:
            await ws.send(json.dumps({"type": "ping", "t": time.time() * 1000}))
            await asyncio.sleep(PING_SECONDS)

    async def _message(self, ws, raw) -> None:
        data = json.loads(raw)
        kind = data.get("type")
        if kind == "pong":
            self._clock(data)
        if kind == "group.content" and isinstance(data.get("step"), int):
            self.contents[data["step"]] = data
            self.changed.set()
        if kind != "group.state" or data.get("version", 0) <= self.version:
            return
        self.version = data["version"]
        await ws.send(json.dumps({"type": "ack", "version": data["version"]}))
        if data.get("phase") == "running":
            self.state_arrival.setdefault(int(data.get("step", 0)), time.monotonic())
        self.state = data
        if self.on_state is not None:
            await self.on_state(data, self)
        self.changed.set()

    def _clock(self, pong: dict) -> None:
        now = time.time() * 1000
        try:
            rtt = now - float(pong["t"])
            offset = (float(pong["t"]) + now) / 2 - float(pong["server_ms"])
        except (KeyError, TypeError, ValueError):
            return
        if self.rtt_ms is None or rtt < self.rtt_ms:
            self.rtt_ms, self.offset_ms = rtt, offset

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
