"""Protocol clients of the live participant page (/work/tasks/live-protocol.md, revision 1;
docs/groups.md "The live page") for bench/screen.py: each does what ``static/js/group_live.js``
does per step, with asyncio, ``websockets`` and one keep-alive HTTP connection, no browser.

``LiveClient(mode="live")``: GET the run URL once (the live page: ``[data-lockstep]`` with
its socket path, content and answer URLs, the visit and content in ``#live-initial``, a
CSRF token), hold one socket (ack every state: a step's first one after its reveal,
``clock.holds_ack``; ping and keep the clock offset of the pong
with the shortest round trip by protocol.js's rule, ``realtime.clock``: quick pings while
the best round trip is long, one every 3 s, one after each step's ``starts_at``). A state that starts a new
step and the step's ``group.content`` frame (pushed after it; a content GET when its
``order`` is not the participant's visit's) parsed (its inputs: what rendering finds) is
"ready"; the page reveals it at ``starts_at`` on its own clock (``starts_at - offset``)
or at once when late, and reports ``onset`` (with ``ready_at``) and its ``location``.
The onset a page would achieve is computed, not taken from this process's timer
wake-ups (several hundred clients share one event loop here; a browser has its own):
``max(starts_at - offset, ready)`` on the machine's clock, which is the server's clock
(one machine). ``answer()`` POSTs the content's fields with the visit (``_order``,
``_visit``, ``_nonce``), ``_group_step``, the onset and the clock; the clients chosen by
``resend`` POST the same answer twice (the second must store nothing).

``mode="reload"``: on the same states the client GETs the run URL instead, as a reload
does; the live page back with that step's content in ``#live-initial`` is "ready".

Times are wall-clock seconds (``time.time()``): one clock for the clients' processes and
the parent, which stamps the experimenter's send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from urllib.parse import urlencode

from bench.keepalive import ATTR, KeepAlive, form_fields
from bots.socket import ping_later, ping_text
from realtime import clock

LOCKSTEP = re.compile(r"<[a-z]+\b[^>]*\bdata-lockstep\b[^>]*>", re.I)
BUTTON = re.compile(r"<button\b[^>]*\btype=\"submit\"[^>]*>", re.I)
INITIAL = re.compile(r'<script id="live-initial" type="application/json">(.*?)</script>', re.S)
WS_ARGS = dict(compression=None, ping_interval=None, open_timeout=60, close_timeout=2, max_size=2**24)
PING_S = clock.PING_MS / 1000  # protocol.js pingMs


def live_page(text: str) -> dict | None:
    """The live page's ``[data-lockstep]`` attributes (without ``data-``), its
    ``#live-initial`` JSON as ``initial`` and its CSRF token, or None when the page is not
    the live page."""
    tag, initial = LOCKSTEP.search(text), INITIAL.search(text)
    if not tag or not initial:
        return None
    attrs = {k.lower().removeprefix("data-"): v for k, v in ATTR.findall(tag.group(0))}
    if "content-url" not in attrs or "answer-url" not in attrs:
        return None
    hidden, _ = form_fields(text)
    return {**attrs, "initial": json.loads(initial.group(1)), "csrf": hidden.get("csrfmiddlewaretoken", "")}


def parsed(content: dict) -> dict:
    """The step's content as the page renders it: the form's hidden inputs, the questions
    (each answered "4") and the name and value of the button a participant clicks (the
    ``next`` one when there are several)."""
    html = content.get("html") or ""
    hidden, questions = form_fields(html)
    buttons = [dict(ATTR.findall(b)) for b in BUTTON.findall(html)]
    clicked = next((b for b in buttons if b.get("value") == "next"), buttons[0] if buttons else {})
    click = {clicked["name"]: clicked.get("value", "")} if clicked.get("name") else {}
    return {**content, "fields": {**hidden, **{q: "4" for q in questions}, **click}}


class LiveClient:
    def __init__(self, index: int, port: int, group: dict, mode: str = "live", resend: float = 0.0):
        self.index, self.port, self.mode = index, port, mode
        self.origin = f"http://127.0.0.1:{port}"
        self.run_url = f"/run/{group['experiment']}/"
        self.http = KeepAlive(port)
        self.http.cookies[group["run_cookie"]] = group["run_tokens"][index]
        self.resend = random.Random(index).random() < resend  # this client also re-sends each answer
        self.page: dict = {}
        self.visit: dict = {}  # the visit the answer names (order, visit, nonce)
        self.version, self.shown, self.ready_sent = 0, -1, -1  # newest state; step on screen; ready sent
        self.revealed: int | None = None  # the step revealed last (its onset reported)
        self.held_ack, self.ack_timer = None, None  # a step's first state's ack, until its reveal
        self.offset_ms, self.rtt_ms = 0.0, None  # server clock minus ours, best round trip
        self.fast_sent, self.quiet_step = 0, None  # quick pings since the open; the step pinged after
        self.pongs: list[tuple[float, float, float]] = []  # (arrival, rtt ms, offset ms) of every pong
        self._ping_tasks: set[asyncio.Task] = set()  # (held: the loop keeps only weak references)
        self.content: dict = {}
        self.states: dict[int, dict] = {}  # step -> the state that started it, until its content is there
        self.pushed: dict[int, dict] = {}  # step -> its group.content frame, until its state is there
        self.frame: dict[int, float] = {}  # step -> its state's arrival
        self.ready: dict[int, float] = {}  # step -> content parsed (live) / the live page back (reload)
        self.onset: dict[int, float] = {}  # step -> the onset it would achieve (machine clock)
        self.reported: dict[int, tuple[float, float]] = {}  # step -> (at, late_ms) as reported
        self.starts_at: dict[int, float] = {}
        self.offsets: dict[int, float] = {}  # step -> the clock offset it revealed by (its error: one machine)
        self.rtts: dict[int, float | None] = {}  # step -> the round trip of that estimate
        self.wrong_page: dict[int, str] = {}
        self.fetched = 0  # content GETs (pushed content of another form)
        self.posts: list[tuple[int, float, object, object]] = []  # (step, seconds, status, stored)
        self.plain: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self.sockets, self.ws, self.stop = 0, None, False
        self.connected = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()
        self.timers: set[asyncio.TimerHandle] = set()
        self.task: asyncio.Task | None = None

    async def setup(self) -> None:
        response = await self.http.request("GET", self.run_url)
        page = live_page(response.text()) if response.status == 200 else None
        if page is None:
            raise RuntimeError(f"the run URL gave HTTP {response.status} without the live page ([data-lockstep])")
        self.page = page
        self._take(page["initial"], response.text())
        self.task = asyncio.create_task(self.socket_loop())

    def _take(self, initial: dict, text: str) -> None:
        """The live page's step, visit and content (its questions are in the page itself:
        ``html`` is null): shown on the first state of that step (late: its ``starts_at``
        has passed), as group_live.js does."""
        self.visit = initial.get("visit") or self.visit
        if initial.get("mode") == "form" and initial.get("content"):
            html = initial["content"].get("html") or text
            self.pushed[initial["step"]] = {**initial["content"], "html": html, "starts_at": initial.get("starts_at")}

    # ---- the socket ---------------------------------------------------------------------

    async def socket_loop(self) -> None:
        import websockets

        url = f"ws://127.0.0.1:{self.port}{self.page['ws-path']}"
        headers = [("Origin", self.origin), ("Cookie", "; ".join(f"{k}={v}" for k, v in self.http.cookies.items()))]
        while not self.stop:
            try:
                async with websockets.connect(url, additional_headers=headers, **WS_ARGS) as ws:
                    self.ws, self.sockets = ws, self.sockets + 1
                    pinger = asyncio.create_task(self._pinger(ws))
                    try:
                        async for message in ws:
                            await self.on_message(ws, json.loads(message))
                    finally:
                        pinger.cancel()
            except Exception as exc:  # noqa: BLE001 - the page reconnects (protocol.js backs off)
                if not self.stop:
                    self.errors.append(f"socket: {exc!r}"[:200])
                    await asyncio.sleep(0.5)
            self.ws = None

    async def _pinger(self, ws) -> None:
        """One ping at once (the quick ones follow its pongs, ``on_message``), then every 3 s
        (protocol.js); the later ones at a random phase, as pages opened at different
        moments have (all clients here open within a second)."""
        self.fast_sent = 0
        await ws.send(ping_text())
        await asyncio.sleep(random.uniform(0, PING_S))
        while True:
            await ws.send(ping_text())
            await asyncio.sleep(PING_S)

    async def on_message(self, ws, data: dict) -> None:
        now = time.time()
        kind = data.get("type")
        if kind == "pong":
            offset, rtt = clock.sample(data["t"], now * 1000, data["server_ms"])
            self.pongs.append((round(now, 3), round(rtt, 1), round(offset, 1)))
            if clock.better(self.rtt_ms, rtt):
                self.rtt_ms, self.offset_ms = rtt, offset
            if (wait := clock.next_ping_ms(self.rtt_ms, self.fast_sent, rtt)) is not None:
                self.fast_sent += 1
                ping_later(ws, wait, self._ping_tasks)
        elif kind == "group.content":
            if data.get("step", -1) > self.shown:
                self.pushed[data["step"]] = data
                self._maybe_show(ws, data["step"])
        elif kind == "group.state":
            await self._acknowledge(ws, data)
            if data["version"] <= self.version:
                return
            self.version = data["version"]
            self.connected.set()
            self._quiet_ping(ws, data)
            step = data.get("step", 0)
            if data.get("phase") == "waiting" and self.ready_sent != step:  # before the start, as the page does
                self.ready_sent = step
                await ws.send(json.dumps({"type": "ready", "step": step}))
            if (
                data.get("phase") != "running"
                or step <= self.shown
                or (data.get("me") or {}).get("responded_step") == step
            ):
                return
            self.frame.setdefault(step, now)
            self.states[step] = data
            if self.mode == "reload":
                self.shown = step
                self._start(self.reload(step))
            elif self.page.get("push") == "0":  # content is not pushed: the page GETs it
                self.shown = step
                self._start(self.show(ws, step, self.states.pop(step), None))
            else:
                self._maybe_show(ws, step)
                self._later(1.5, lambda: self._unless_pushed(ws, step))

    async def _acknowledge(self, ws, state: dict) -> None:
        """At once, or held until the step's reveal (``clock.holds_ack``; protocol.js
        ``acknowledge``), at most ``ACK_HOLD_MS``."""
        if clock.holds_ack(state.get("phase"), state.get("step"), self.revealed):
            self.held_ack = max(self.held_ack or 0, state["version"])
            if self.ack_timer is None:
                self.ack_timer = asyncio.get_running_loop().call_later(
                    clock.ACK_HOLD_MS / 1000, lambda: self._start(self._release_ack(ws))
                )
            return
        version = max(state["version"], self.held_ack or 0)
        self._drop_held_ack()
        await ws.send(json.dumps({"type": "ack", "version": version}))

    async def _release_ack(self, ws) -> None:
        version = self.held_ack
        self._drop_held_ack()
        if version is not None:
            with contextlib.suppress(Exception):  # (the socket closed meanwhile: a new one acks its own)
                await ws.send(json.dumps({"type": "ack", "version": version}))

    def _drop_held_ack(self) -> None:
        if self.ack_timer is not None:
            self.ack_timer.cancel()
        self.ack_timer = self.held_ack = None

    def _quiet_ping(self, ws, state: dict) -> None:
        """One ping a little after the step's ``starts_at`` (protocol.js ``quietPing``)."""
        if state.get("starts_at") is None or state.get("step") == self.quiet_step:
            return
        self.quiet_step = state.get("step")
        wait = clock.quiet_ping_ms(state["starts_at"], self.offset_ms, time.time() * 1000, random.random())
        if wait is not None:
            self._later(wait / 1000, lambda: ping_later(ws, 0, self._ping_tasks))

    def _maybe_show(self, ws, step: int) -> None:
        if step in self.states and step in self.pushed and self.mode == "live":
            self.shown = step
            state, pushed = self.states.pop(step), self.pushed.pop(step)
            if pushed.get("order") == self.visit.get("order"):
                self._ready(ws, step, state, pushed)
            else:  # another form's content: the page GETs its own
                self._start(self.show(ws, step, state, None))

    def _unless_pushed(self, ws, step: int) -> None:
        """Pushed content follows its state; the page GETs it when it has not come in 1.5 s."""
        if step in self.states and self.shown < step:
            self.shown = step
            self._start(self.show(ws, step, self.states.pop(step), None))

    def _start(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _later(self, seconds: float, call) -> None:
        """``call()`` in ``seconds`` on a timer, as the page's setTimeout: the waits of every
        step (the content's backup, the reveal, the quiet ping) cost the client process a
        timer each, not a task, in the moments every page of the process is being served."""

        def run():
            self.timers.discard(handle)
            call()

        handle = asyncio.get_running_loop().call_later(max(0.0, seconds), run)
        self.timers.add(handle)

    # ---- one step -----------------------------------------------------------------------

    async def show(self, ws, step: int, state: dict, pushed: dict | None) -> None:
        """The content GET (not pushed, or another form's), then ``_ready``."""
        self.fetched += 1
        try:
            response = await self.http.request("GET", self.page["content-url"])
            reply = json.loads(response.body) if response.status == 200 else {}
        except Exception as exc:  # noqa: BLE001 - counted as a step not shown
            self.wrong_page[step] = repr(exc)[:200]
            return
        if reply.get("step") != step or not reply.get("content"):
            self.wrong_page[step] = f"content GET: HTTP {response.status}, step {reply.get('step')}"
            return
        self.visit = reply.get("visit") or self.visit
        self._ready(ws, step, state, {**reply["content"], "starts_at": reply.get("starts_at")})

    def _ready(self, ws, step: int, state: dict, pushed: dict) -> None:
        """The content parsed: "ready"; the reveal at ``starts_at`` on this client's clock."""
        try:
            self.content = parsed(pushed)
        except Exception as exc:  # noqa: BLE001 - counted as a step not shown
            self.wrong_page[step] = repr(exc)[:200]
            return
        ready = self.ready[step] = time.time()
        starts_at = float(state.get("starts_at") or pushed.get("starts_at") or 0)
        self._reveal(ws, step, starts_at, ready, pushed.get("form") or "")

    def _reveal(self, ws, step: int, starts_at: float, ready: float, form: str) -> None:
        """At ``starts_at`` by the clock estimate, looked at again when the timer fires (it may
        have improved while the step waited), or at once when that has passed."""
        due = (starts_at - self.offset_ms) / 1000
        if due > time.time():
            self._later(due - time.time(), lambda: self._reveal(ws, step, starts_at, ready, form))
        else:
            self._start(self._report(ws, step, starts_at, ready, due, form))

    async def _report(self, ws, step: int, starts_at: float, ready: float, due: float, form: str) -> None:
        offset = self.offsets[step] = self.offset_ms
        self.rtts[step] = self.rtt_ms
        onset = max(due, ready)
        at = onset * 1000 + offset  # what the page reports: the server clock by its estimate
        late = max(0.0, at - starts_at) if ready > due else 0.0
        self.starts_at[step], self.reported[step] = starts_at, (at, late)
        self.revealed = max(self.revealed if self.revealed is not None else -1, step)
        with contextlib.suppress(Exception):  # (a socket that closed: its step counts as revealed)
            await ws.send(json.dumps({"type": "onset", "step": step, "at": round(at), "late_ms": round(late),
                                      "ready_at": round(ready * 1000 + offset),
                                      "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1)}))  # fmt: skip
            await self._release_ack(ws)
            await ws.send(json.dumps({"type": "location", "form": form, "step": step}))
        self.onset[step] = onset  # revealed: the parent may go on

    async def reload(self, step: int) -> None:
        try:
            response = await self.http.request("GET", self.run_url)
            page = live_page(response.text()) if response.status == 200 else None
            initial = page["initial"] if page else {}
            if initial.get("step") != step or initial.get("mode") != "form":
                self.wrong_page[step] = f"HTTP {response.status}, step {initial.get('step')} {initial.get('mode')}"
                return
            self.ready[step] = time.time()  # the reload's page is back: what is compared with a plain GET
            self.page["csrf"] = page["csrf"]
            self.visit = initial.get("visit") or self.visit
            self.content = parsed({**initial["content"], "html": initial["content"].get("html") or response.text()})
        except Exception as exc:  # noqa: BLE001 - counted as a step not shown
            self.wrong_page[step] = repr(exc)[:200]

    # ---- commands of the parent ---------------------------------------------------------

    async def answer(self) -> None:
        step = self.shown
        at, late = self.reported.get(step, (None, None))
        fields = self.content.get("fields", {})
        steps = [k for k in fields if k.endswith("_group_step")] or ["_group_step"]  # the form's own (prefixed)
        body = {**fields, **dict.fromkeys(steps, step), "csrfmiddlewaretoken": self.page["csrf"],
                "_order": self.visit.get("order", ""), "_visit": self.visit.get("visit", ""),
                "_nonce": self.visit.get("nonce", ""), "_clock_offset_ms": round(-self.offset_ms, 1),
                "_clock_rtt_ms": round(self.rtt_ms, 1) if self.rtt_ms is not None else ""}  # fmt: skip
        if at is not None:
            body |= {"_onset_ms": round(at, 1), "_onset_late_ms": round(late, 1)}
        encoded = urlencode(body).encode()
        visit = None
        for _ in range(2 if self.resend else 1):  # a re-send carries the same visit and nonce
            visit = await self._post(step, encoded) or visit
        self.visit = visit or self.visit

    async def _post(self, step: int, body: bytes) -> dict | None:
        started = time.time()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin,
                   "Referer": self.origin + self.run_url, "X-CSRFToken": self.page["csrf"]}  # fmt: skip
        stored, visit = None, None
        try:
            response = await self.http.request("POST", self.page["answer-url"], body, headers)
            status: object = response.status
            try:
                reply = json.loads(response.body)
                stored = reply.get("stored") if reply.get("ok") else reply.get("code") or "errors"
                visit = reply.get("visit")
                if not reply.get("ok"):
                    self.errors.append(f"answer step {step}: {reply.get('errors') or reply.get('message')}"[:300])
            except ValueError:
                stored = "not json"
        except Exception as exc:  # noqa: BLE001 - reported as a failed answer
            status = repr(exc)[:200]
        self.posts.append((step, time.time() - started, status, stored))
        return visit

    async def plain_get(self) -> None:
        started = time.time()
        response = await self.http.request("GET", "/")
        self.plain.append((time.time() - started, response.status))

    def settled(self, step: int) -> bool:
        """The parent may go on: this step is revealed (live), back (reload) or failed."""
        done = self.ready if self.mode == "reload" else self.onset
        return step in done or step in self.wrong_page

    async def close(self) -> None:
        self.stop = True
        self._drop_held_ack()
        for handle in self.timers:
            handle.cancel()
        if self.ws is not None:
            await self.ws.close()
        tasks = [t for t in (self.task, *self.tasks, *self._ping_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.http.close()

    def result(self) -> dict:
        keys = ("index", "frame", "ready", "onset", "reported", "starts_at", "offsets", "wrong_page", "posts", "plain",
                "sockets", "resend", "fetched", "pongs", "rtts")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "errors": self.errors[:5], "http_connections": self.http.opened}
