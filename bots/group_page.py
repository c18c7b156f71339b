"""The group part of a run, behind one small interface so that the bot follows whichever
participant page the server has: ``play(page) -> Page`` plays from the first lockstep page
until the run leaves the group part and returns the first page after it.

``ReloadGroupPage`` is the page of main today (docs/groups.md, "The lockstep group_trial"):
every step is a document of its own. The waiting screen and the trial form each open the
participant socket; when a state no longer matches the page (``shouldLeave`` in
``static/js/group_participant.js``) the page GETs the run URL; an answer is the form's POST
and its redirect. A dropped bot (``--drop-rate``) closes its socket, stays away 1-3 s and
comes back as a reload.
"""

from __future__ import annotations

import asyncio
import time

from bots.pages import Page
from bots.socket import KICKED, ParticipantSocket

OVER = ("ended", "aborted")


def should_leave(state: dict, page: Page) -> bool:
    """Whether the page on screen no longer matches the group (group_participant.js)."""
    mode, phase = page.lockstep.get("mode", "waiting"), page.lockstep.get("phase", "waiting")
    me = state.get("me") or {}
    if me.get("status") == "kicked":
        return True
    if phase in OVER:
        return False
    if state.get("phase") in OVER or state.get("step") != page.step:
        return True
    if state.get("exit_loop") and page.lockstep.get("exit-loop") != "1":
        return True
    if mode == "waiting":
        if phase == "waiting" and state.get("phase") != "waiting":
            return True
        if phase == "paused" and state.get("phase") == "running" and me.get("responded_step") != state.get("step"):
            return True
    return False


class ReloadGroupPage:
    name = "reload"

    def __init__(self, bot):
        self.bot = bot
        self.ready_sent: int | None = None

    def _socket(self, page: Page) -> ParticipantSocket:
        http = self.bot.http
        headers = [("Origin", http.base), ("Cookie", http.cookie_header())]
        socket = ParticipantSocket(http.ws_base + page.lockstep.get("ws-path", ""), headers, on_state=self._on_state)
        socket.open()
        return socket

    async def _on_state(self, state: dict, socket: ParticipantSocket) -> None:
        if state.get("phase") == "waiting" and self.ready_sent != state.get("step"):
            self.ready_sent = state.get("step")
            await socket.send({"type": "ready", "step": state.get("step")})

    async def play(self, page: Page) -> Page:
        while page.lockstep and page.kind in ("form", "waiting"):
            if page.kind == "waiting" and page.lockstep.get("phase") in OVER:
                return page  # rendered after the end: nothing more will happen
            socket = self._socket(page)
            try:
                page = await self._document(page, socket)
            finally:
                self.bot.record.disconnects += socket.drops
                await socket.close()
        return page

    async def _document(self, page: Page, socket: ParticipantSocket) -> Page:
        bot = self.bot
        if bot.rng.random() < bot.options.drop_rate:
            await socket.wait(lambda s: True, 10)
            await socket.close()  # the server sees the tab offline while it is away
            return await self._drop()
        if page.kind == "form":
            bot.record.on_screen(page.step)
            await socket.wait(lambda s: True, 10)  # the page's first state: its shared parameters
            await bot.think()
            if socket.state is not None and should_leave(socket.state, page):
                return await bot.load()
            return await bot.answer(page, shared_params=(socket.state or {}).get("shared_params") or {})
        await socket.wait(lambda s: should_leave(s, page), bot.options.timeout)
        if socket.closed_code == KICKED or socket.state is None or not should_leave(socket.state, page):
            if socket.closed_code is None:
                bot.record.errors.append(f"waited {bot.options.timeout:.0f} s on step {page.step}")
            return Page(status=0, kind="stopped")
        bot.record.trigger[socket.state.get("step")] = time.monotonic()
        return await bot.load()

    async def _drop(self) -> Page:
        """The bot's tab goes away for a while (socket closed) and comes back as a reload."""
        self.bot.record.drops += 1
        self.bot.http.close()
        await asyncio.sleep(self.bot.rng.uniform(*self.bot.options.drop_seconds))
        return await self.bot.load()
