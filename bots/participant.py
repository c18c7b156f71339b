"""One bot: a participant's browser tab, played by a script. It starts from a ticket link or
the participant-code page, answers each form through the run page's POST with the form's
CSRF token, and hands the group part to the group-page adapter (bots/group_page.py).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from bots.group_page import ReloadGroupPage
from bots.http import Browser
from bots.live_page import LiveGroupPage
from bots.pages import Page, parse
from bots.script import ExpectationFailed, Script, posted_fields, screen_for

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MAX_PAGES = 2000


@dataclass
class Options:
    base_url: str
    experiment_id: int
    bot_token: str = ""
    ticket: str = ""  # a ticket code, or
    participant_code: str = ""  # a group session's participant code
    think: tuple[float, float] = (0.0, 0.0)
    drop_rate: float = 0.0
    drop_seconds: tuple[float, float] = (1.0, 3.0)  # how long a dropped tab stays away
    timeout: float = 600.0
    join: str = "link"  # group bots: the group session's link (ticket) or its participant code
    seed: int | None = None


@dataclass
class Record:
    """What one bot did and saw."""

    bot: int
    run_token: str = ""
    status: str = "starting"  # starting | playing | finished | stopped | failed
    sent: dict = field(default_factory=dict)  # (order, visit) -> {"form", "step"}: answers the server took
    screens: dict = field(default_factory=dict)  # group step -> when its form was on screen (monotonic)
    trigger: dict = field(default_factory=dict)  # group step -> when the state that moved the page arrived
    latencies: list = field(default_factory=list)  # (form name, seconds from POST to the next page)
    errors: list = field(default_factory=list)
    expectations: list = field(default_factory=list)
    onsets: dict = field(default_factory=dict)  # group step -> (server-clock ms of the reveal, late ms)
    group_page: str = ""  # which group page the bot followed: reload | live
    arrived: bool = False  # reached the group part (the experimenter starts when every bot has)
    http_retries: int = 0  # requests tried again while the server could not be reached
    rate_limited: int = 0  # participant-code posts answered 429 (retried after a wait)
    disconnects: int = 0
    drops: int = 0
    dropped_out: int = 0  # times the server declared this run dropped out (step log, dropout policy)

    def on_screen(self, step: int | None) -> None:
        if step is not None:
            self.screens.setdefault(step, time.monotonic())


class Bot:
    def __init__(self, index: int, options: Options, script: Script):
        self.index, self.options, self.script = index, options, script
        self.http = Browser(options.base_url)
        self.rng = random.Random(None if options.seed is None else options.seed * 100003 + index)
        self.record = Record(bot=index)
        self.earlier: list[dict] = []
        self.reload_page, self.live_page = ReloadGroupPage(self), LiveGroupPage(self)
        self.run_url = f"/run/{options.experiment_id}/"

    async def play(self) -> Record:
        try:
            page = await self.enter()
            self.record.status = "playing"
            await self._pages(page)
        except ExpectationFailed as exc:
            self.record.status = "failed"
            self.record.expectations.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - a bot's failure is reported, the others go on
            self.record.status = "failed"
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.record.errors.append(f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})")
        finally:
            self.record.http_retries = self.http.retries
            self.http.close()
        return self.record

    async def _pages(self, page: Page) -> None:
        for _ in range(MAX_PAGES):
            if page.kind == "end":
                self.record.status = "finished"
                return
            if page.lockstep and page.kind in ("form", "waiting"):
                self.record.arrived = True
                group = self.live_page if "answer-url" in page.lockstep else self.reload_page
                self.record.group_page = group.name
                after = await group.play(page)
                if after.lockstep and after.kind == "waiting":  # the group ended before this run did
                    self.record.status = "finished"
                    return
                page = after
            elif page.kind == "form":
                page = await self.answer(page)
            else:
                self.record.status = "stopped"
                if page.kind != "stopped":
                    self.record.errors.append(f"unexpected page: HTTP {page.status} {page.error_code or page.kind}")
                return
        self.record.errors.append(f"more than {MAX_PAGES} pages")

    async def enter(self) -> Page:
        """The start link (ticket), or the participant-code page and its redirect to the start link."""
        o = self.options
        if o.ticket:
            start = f"/run/{o.experiment_id}/start/?{urlencode({'tc': o.ticket})}"
        else:
            start = await self._code()
        if o.bot_token:
            start += "&" + urlencode({"bot": o.bot_token})
        response = await self.http.follow(await self.http.get(start))
        self.record.run_token = self.http.cookies.get(f"ensemble_run{o.experiment_id}", "")
        return parse(response.status, response.text)

    async def _code(self) -> str:
        """The participant-code page: the start link it redirects to. A 429 (too many codes from
        this address in a minute) is waited out and tried again, as a person would."""
        o = self.options
        attach = f"/group/session/attach/participant/?experiment={o.experiment_id}"
        deadline = time.monotonic() + o.timeout
        while True:
            found = CSRF_INPUT.search((await self.http.get(attach)).text)
            fields = {"code": o.participant_code, "csrfmiddlewaretoken": found.group(1) if found else ""}
            response = await self.http.post(attach, fields)
            if response.is_redirect:
                return self.http.local(response.location)
            if response.status != 429 or time.monotonic() > deadline:
                raise RuntimeError(f"participant code {o.participant_code!r} refused: HTTP {response.status}")
            self.record.rate_limited += 1
            await asyncio.sleep(self.rng.uniform(5, 15))

    async def load(self) -> Page:
        """GET the run URL (a reload, or where the page navigates)."""
        response = await self.http.follow(await self.http.get(self.run_url))
        return parse(response.status, response.text)

    async def think(self, seconds: float | None = None) -> None:
        """Wait before an answer: ``seconds`` (a script's ``_think``), else ``--think``'s range."""
        if seconds is not None:
            await asyncio.sleep(max(0.0, float(seconds)))
            return
        low, high = self.options.think
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))

    def answer_fields(self, page: Page, chosen: dict) -> list[tuple[str, str]]:
        """The posted fields of the answers ``chosen`` (question keys or field names; ``_jspsych``)."""
        return posted_fields(page, chosen)

    def choose(self, page: Page, shared_params: dict) -> dict:
        """The script's answers for the page on screen (raises ExpectationFailed naming bot, form, step)."""
        screen = screen_for(self.index, page, shared_params=shared_params, earlier=self.earlier, rng=self.rng)
        try:
            return self.script.answers(screen)
        except ExpectationFailed as exc:
            raise ExpectationFailed(f"{screen.label}: {exc}") from exc

    def remember(self, page: Page, step: int | None, chosen: dict) -> None:
        """An answer the server stored: counted as sent, and an earlier answer for the script."""
        self.record.sent[page.order_visit] = {"form": page.form_name, "step": step}
        answers = {k: v for k, v in chosen.items() if k != "_jspsych"}
        self.earlier.append({"form": page.form_name, "visit": page.order_visit[1], "step": step, "answers": answers})

    async def answer(self, page: Page, shared_params: dict | None = None) -> Page:
        """Answer the run form on screen (the run page's POST); returns the page the redirect shows."""
        chosen = self.choose(page, shared_params or {})
        wait = chosen.pop("_think", None)
        if wait is not None or not page.lockstep:
            await self.think(wait)
        fields = [*page.hidden.items(), ("_action", chosen.pop("_action", "next")), *self.answer_fields(page, chosen)]
        started = time.monotonic()
        response = await self.http.post(page.action or self.run_url, fields, referer=self.run_url)
        if response.is_redirect:
            after = await self.http.follow(response)
            self.remember(page, page.step if page.lockstep else None, chosen)
        else:
            after = response
        self.record.latencies.append((page.form_name, time.monotonic() - started))
        shown = parse(after.status, after.text)
        if not response.is_redirect:
            self.record.errors.append(
                f"form {page.form_name!r}: HTTP {response.status} {shown.errors[:2] or shown.error_code}"
            )
        return shown
