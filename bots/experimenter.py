"""The experimenter's part of a rehearsal: log in over HTTP, attach with the experimenter
code and drive the experimenter socket (``groups.client.GroupController``). With
``--advance start`` it only starts (the definition's ``auto_advance`` moves the group on);
with ``--advance auto`` it starts once every bot has joined and advances each step as soon as
everybody answered it, recording when each step was clicked (the "click" of click ->
screen); at the end, once every bot is done, it ends the group session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import websockets

from groups.client import GroupController
from groups.state import GroupError

OVER = ("ended", "aborted")
ANYWAY_SECONDS = 5.0


class Experimenter:
    def __init__(self, base_url: str, *, username: str, password: str, experimenter_code: str, count: int):
        self.controller = GroupController(
            base_url, username=username, password=password, experimenter_code=experimenter_code
        )
        self.count = count
        self.clicked: dict[int, float] = {}  # step -> when its start/advance was sent (monotonic)
        self.errors: list[str] = []
        self.anyway: list[int] = []  # steps advanced without "all responded" (see _can_advance)
        self.since: dict[int, float] = {}
        self.connect_retries: list[str] = []  # logins/attaches tried again (the server too busy)

    async def run(self, bots_done: Callable[[], bool], arrived: Callable[[], bool], answered: Callable[[int], bool],
                  *, advance: str, timeout: float) -> None:  # fmt: skip
        ctl = self.controller
        try:
            await self._connect(timeout)
            if advance in ("auto", "start"):  # start: the server's auto_advance moves the group on
                await self._auto(bots_done, arrived, answered, timeout, advancing=advance == "auto")
            while not bots_done():
                await asyncio.sleep(0.2)
            if ctl.state["phase"] not in OVER:
                await ctl.end()
        except Exception as exc:  # noqa: BLE001 - reported; the rehearsal stops its bots
            self.errors.append(f"experimenter: {type(exc).__name__} {getattr(exc, 'code', '')} {exc}".strip())
            raise
        finally:
            await ctl.close()  # the controller pings every 3 s while connected, as the console does

    async def _connect(self, timeout: float) -> None:
        """Log in and attach; a server too busy to answer in time (hundreds of bots arriving
        at once) is tried again, as a person reloads, until ``timeout``. A refused login or
        code is not (GroupError)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.controller.connect()
            except GroupError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                await self.controller.close()
                if time.monotonic() > deadline:
                    raise
                self.connect_retries.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(min(5.0, 0.5 * len(self.connect_retries)))

    async def _auto(self, bots_done, arrived, answered, timeout: float, *, advancing: bool = True) -> None:
        """Start once every bot reached the group part (or gave up), advance each answered step."""
        ctl = self.controller
        if ctl.state["phase"] == "waiting":
            await self._until(lambda s: arrived(), timeout)
            self.clicked[0] = time.monotonic()
            await ctl.start()
        while advancing and not bots_done():
            state = await self._until(lambda s: self._can_advance(s, answered) or s["phase"] in OVER or bots_done(),
                                      timeout)  # fmt: skip
            if bots_done() or state["phase"] in OVER:
                return
            if state["phase"] == "running" and self._can_advance(state, answered) and state.get("active", 1):
                step = state["step"]
                if not state["all_responded"]:
                    self.anyway.append(step)
                self.clicked[step + 1] = time.monotonic()
                try:
                    await ctl.advance(step, timeout=timeout)
                except GroupError as exc:
                    if exc.code != "stale_step":
                        raise
            elif not state.get("active", 1):
                await asyncio.sleep(0.1)  # everyone finished: the bots are about to be done

    def _can_advance(self, state: dict, answered: Callable[[int], bool]) -> bool:
        """Everybody answered; or every bot did and the rest stayed silent for ANYWAY_SECONDS (runs
        left behind by a start link whose reply was lost in a restart: *Advance anyway*)."""
        if state["all_responded"]:
            return True
        step = state["step"]
        if not answered(step):
            self.since.pop(step, None)
            return False
        return time.monotonic() - self.since.setdefault(step, time.monotonic()) > ANYWAY_SECONDS

    async def _until(self, predicate, timeout: float) -> dict:
        """A snapshot satisfying ``predicate``; also wakes every 0.2 s to look at the bots."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.controller.wait_for(predicate, timeout=0.2)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
