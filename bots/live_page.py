"""The live group page (``/work/tasks/live-protocol.md``, the ``live`` branch): one document
for the whole group part. The bot keeps one participant socket; each step's content comes
as a ``group.content`` frame (or from the content URL when the pushed one is not its
visit's), is revealed at the step's ``starts_at`` on the bot's clock corrected by its
offset estimate, reported with an ``onset`` message, and answered by a POST to the answer
URL (JSON reply: the next visit, or leave). A dropped bot closes its socket, stays away
1-3 s and reloads the run URL (the live page again, at the current step).
"""

from __future__ import annotations

import asyncio
import json
import time

from bots.pages import Page, parse_fragment
from bots.socket import KICKED, ParticipantSocket

OVER = ("ended", "aborted")


def must_leave(state: dict | None) -> bool:
    """The run leaves the group part (the live page navigates to the run URL)."""
    if not state:
        return False
    me = state.get("me") or {}
    if state.get("phase") in OVER or me.get("status") in ("kicked", "finished"):
        return True
    return bool(state.get("exit_loop")) and me.get("responded_step") == state.get("step")


class LiveGroupPage:
    name = "live"

    def __init__(self, bot):
        self.bot = bot
        self.visit: dict | None = None
        self.visit_stale = False  # answered for (a stand-in): the next content is fetched with its visit
        self.answered: set[int] = set()
        self.rolled: set[int] = set()  # steps whose drop-out dice were rolled (once per step)
        self.csrf = ""
        self.urls: dict[str, str] = {}

    async def play(self, page: Page) -> Page:
        initial = page.live or {}
        self.visit, self.csrf, self.urls = (
            initial.get("visit"),
            page.hidden.get("csrfmiddlewaretoken", ""),
            page.lockstep,
        )
        self.document = page  # the questions the page was served with (its initial content has no html)
        http = self.bot.http
        headers = [("Origin", http.base), ("Cookie", http.cookie_header())]
        socket = ParticipantSocket(http.ws_base + page.lockstep.get("ws-path", ""), headers)
        socket.open()
        try:
            return await self._follow(initial, socket)
        finally:
            self.bot.record.disconnects += socket.drops
            await socket.close()

    async def _follow(self, initial: dict, socket: ParticipantSocket) -> Page:
        bot = self.bot
        if initial.get("mode") == "form" and initial.get("content"):
            socket.contents.setdefault(initial["step"], initial["content"])
        deadline = time.monotonic() + bot.options.timeout
        while time.monotonic() < deadline:
            state = socket.state
            if socket.closed_code == KICKED or must_leave(state) or initial.get("mode") == "leave":
                return await bot.load()
            step = state.get("step") if state else None
            mine = (state or {}).get("me") or {}  # answered for it (a stand-in bot while it was away): it waits
            if state and state.get("phase") == "running" and mine.get("responded_step") == step:
                self.visit_stale = self.visit_stale or step not in self.answered  # (group_live.js visitStale)
            if (
                state
                and state.get("phase") == "running"
                and step not in self.answered
                and mine.get("responded_step") != step
            ):
                if step not in self.rolled:
                    self.rolled.add(step)
                    if bot.rng.random() < bot.options.drop_rate:
                        return await self._drop(socket)
                content = await self._content(socket, step)
                if content == "leave":
                    return await bot.load()
                if content is not None and await self._answer(socket, step, content) == "leave":
                    return await bot.load()
            seen = state
            await socket.wait(lambda s: s is not seen, min(5.0, max(deadline - time.monotonic(), 0.1)))  # noqa: B023
        bot.record.errors.append(f"waited {bot.options.timeout:.0f} s on the live page")
        return Page(status=0, kind="stopped")

    async def _content(self, socket: ParticipantSocket, step: int):
        """The step's content for this bot's visit: pushed, or from the content URL."""
        pushed = socket.contents.get(step)
        if pushed is not None and self._fits(pushed):
            return pushed
        if pushed is None and not self.visit_stale:  # the push follows its state: give it a moment before asking
            await socket.wait(lambda s: step in socket.contents, 1.5)
            pushed = socket.contents.get(step)
            if pushed is not None and self._fits(pushed):
                return pushed
        response = await self.bot.http.get(self.urls.get("content-url", ""))
        reply = json.loads(response.text) if response.status == 200 else {}
        if reply.get("mode") == "leave":
            return "leave"
        if reply.get("visit"):
            self.visit, self.visit_stale = reply["visit"], False
        return reply.get("content") if reply.get("mode") == "form" and reply.get("step") == step else None

    def _fits(self, pushed: dict) -> bool:
        """A pushed content names no visit: it is this bot's when its own visit is current
        and of the same form."""
        return bool(self.visit) and not self.visit_stale and pushed.get("order") == self.visit.get("order")

    async def _reveal(self, socket: ParticipantSocket, step: int, content: dict) -> tuple[float, float]:
        """Wait for ``starts_at`` on this clock; report the onset. Returns (onset ms, late ms), server clock."""
        offset = socket.offset_ms or 0.0  # this clock minus the server's
        starts_at = content.get("starts_at") or (socket.state or {}).get("starts_at")
        if starts_at:
            wait = (starts_at + offset) / 1000 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        onset = time.time() * 1000 - offset
        late = max(0.0, onset - starts_at) if starts_at else 0.0
        self.bot.record.on_screen(step)
        self.bot.record.onsets.setdefault(step, (onset, late))
        await socket.send({"type": "onset", "step": step, "at": onset, "late_ms": late, "ready_at": onset,
                           "rtt_ms": socket.rtt_ms})  # fmt: skip
        await socket.send({"type": "location", "form": content.get("form", ""), "step": step})
        return onset, late

    def _fields(self, step: int, page: Page, chosen: dict, reveal: tuple[float, float], socket) -> list:
        visit = self.visit or {}
        out = [
            ("csrfmiddlewaretoken", self.csrf),
            ("_order", visit.get("order", "")),
            ("_visit", visit.get("visit", "")),
            ("_nonce", visit.get("nonce", "")),
            ("_group_step", step),
            ("_onset_ms", round(reveal[0])),
            ("_onset_late_ms", round(reveal[1])),
            ("_clock_offset_ms", round(socket.offset_ms or 0)),
            ("_clock_rtt_ms", round(socket.rtt_ms or 0)),
            ("_action", chosen.pop("_action", "next")),
        ]
        out += [(k, v) for k, v in page.hidden.items() if k not in dict(out)]
        return out + self.bot.answer_fields(page, chosen)

    def _page(self, step: int, content: dict) -> Page:
        """The step's questions as the page shows them, with this bot's visit."""
        html = content.get("html")
        if html is None:  # the initial content: its questions are in the document
            page = parse_fragment("", form=content.get("form", ""))
            page.fields = dict(self.document.fields)
            page.hidden = {k: v for k, v in self.document.hidden.items() if not k.startswith("_")}
        else:
            page = parse_fragment(html, form=content.get("form", ""))
        page.timeline, page.lockstep = content.get("timeline"), {"step": str(step)}
        page.hidden.update({"_order": str((self.visit or {}).get("order", -1)),
                            "_visit": str((self.visit or {}).get("visit", -1))})  # fmt: skip
        return page

    async def _answer(self, socket: ParticipantSocket, step: int, content: dict, retry: bool = True) -> str:
        bot = self.bot
        page = self._page(step, content)
        reveal = await self._reveal(socket, step, content)
        chosen = bot.choose(page, content.get("shared_params") or {})
        await bot.think(chosen.pop("_think", None))
        fields = self._fields(step, page, chosen, reveal, socket)
        started = time.monotonic()
        response = await bot.http.post(self.urls.get("answer-url", ""), fields, referer=bot.run_url)
        bot.record.latencies.append((page.form_name, time.monotonic() - started))
        reply = json.loads(response.text) if response.body[:1] == b"{" else {}
        if response.status == 200 and reply.get("ok"):
            self.answered.add(step)
            if reply.get("stored"):
                bot.remember(page, step, chosen)
            if reply.get("visit"):
                self.visit, self.visit_stale = reply["visit"], False
            return "leave" if reply.get("next") == "leave" else "wait"
        if reply.get("code") == "stale_visit" and retry:  # as the page: its current visit's content, answered once
            self.visit_stale = True
            content = await self._content(socket, step)
            if content == "leave":
                return "leave"
            if content is not None:
                return await self._answer(socket, step, content, retry=False)
        if reply.get("code") == "already_answered":  # an earlier send (or a stand-in) stored it: wait as the page does
            self.answered.add(step)
            return "wait"
        bot.record.errors.append(
            f"step {step}: HTTP {response.status} {reply.get('code', '')} {reply.get('errors', '')}"
        )
        if reply.get("code") in ("stale_step", "stale_visit"):
            self.answered.add(step)
        if reply.get("code") == "invalid" and reply.get("html") and retry:  # answer the re-rendered questions once
            return await self._answer(socket, step, {**content, "html": reply["html"]}, retry=False)
        return "wait"

    async def _drop(self, socket: ParticipantSocket) -> Page:
        """The tab goes away (socket and connection closed: the server sees it offline) for
        ``drop_seconds`` and comes back as a reload."""
        self.bot.record.drops += 1
        await socket.close()
        self.bot.http.close()
        await asyncio.sleep(self.bot.rng.uniform(*self.bot.options.drop_seconds))
        return await self.bot.load()
