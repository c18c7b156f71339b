"""A Python controller for a live group session, for scripts and notebooks.

It logs in over HTTP like a browser (the editor login, then the experimenter-code
page), then drives the experimenter socket with the ``websockets`` library::

    import asyncio
    from groups.client import GroupController

    async def main():
        async with GroupController("http://127.0.0.1:8000", username="lab", password="…",
                                   experimenter_code="WXYZ") as ctl:
            await ctl.start()
            await ctl.wait_for(lambda s: s["all_responded"], timeout=120)
            await ctl.set_context({"round": 2})
            await ctl.advance()          # the step the controller last saw
            print(ctl.state["step"], ctl.state["participants"])

    asyncio.run(main())

Or from a shell: ``python -m groups.client --url http://127.0.0.1:8000 --user lab
--code WXYZ watch`` (password from ``ENSEMBLE_PASSWORD`` or a prompt); commands
``watch``, ``start``, ``advance``, ``pause``, ``resume``, ``exit_loop``, ``end``,
``abort``, ``context '{"k": 1}'``, ``kick ID``.

This module imports no Django: it runs anywhere the ``websockets`` package does.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

import websockets

from .state import GroupError

PING_SECONDS = 3.0
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_STATUS_PATH = re.compile(r"/group/session/status/(\d+)/")


class LoginFailed(GroupError):
    def __init__(self, message: str):
        super().__init__(message, code="login_failed")


class _Browser:
    """Just enough of a browser: cookies, CSRF tokens, redirects."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(self.base + path, timeout=15) as response:
            return response.geturl(), response.read().decode()

    def post_form(self, path: str, fields: dict) -> tuple[str, str]:
        _, page = self.get(path)
        token = _CSRF_INPUT.search(page)
        data = {**fields, "csrfmiddlewaretoken": html.unescape(token.group(1)) if token else ""}
        request = urllib.request.Request(
            self.base + path, data=urllib.parse.urlencode(data).encode(), headers={"Referer": self.base + path}
        )
        try:
            with self.opener.open(request, timeout=15) as response:
                return response.geturl(), response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.geturl(), exc.read().decode(errors="replace")

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


def attach_over_http(base_url: str, *, username: str, password: str, experimenter_code: str) -> tuple[int, str]:
    """Log in and attach with the experimenter code; returns (group session id, Cookie header)."""
    browser = _Browser(base_url)
    url, _ = browser.post_form("/editor/login/?next=/editor/", {"username": username, "password": password})
    if "/editor/login/" in url or not any(c.name == "sessionid" for c in browser.jar):
        raise LoginFailed(f"Login as {username!r} failed.")
    url, page = browser.post_form("/group/session/attach/experimenter/", {"code": experimenter_code})
    match = _STATUS_PATH.search(urllib.parse.urlparse(url).path)
    if not match:
        if "/editor/login/" in url:
            raise LoginFailed(f"{username!r} is not an experimenter (staff).")
        raise GroupError("The experimenter code was not accepted.", code="bad_code")
    return int(match.group(1)), browser.cookie_header()


class GroupController:
    """The experimenter socket of one group session. ``state`` is the latest snapshot."""

    def __init__(self, base_url: str, *, username: str, password: str, experimenter_code: str):
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password, "experimenter_code": experimenter_code}
        self.group_session_id: int | None = None
        self.state: dict | None = None
        self.last_pong: dict | None = None  # the server's answer to the latest ping
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._pinger: asyncio.Task | None = None
        self._changed = asyncio.Condition()
        self._errors: asyncio.Queue = asyncio.Queue()

    async def __aenter__(self) -> GroupController:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        """Log in, attach, open the socket and wait for the first snapshot."""
        self.group_session_id, cookie = await asyncio.to_thread(attach_over_http, self.base_url, **self._credentials)
        ws_url = self.base_url.replace("http", "ws", 1) + f"/ws/group/{self.group_session_id}/experimenter/"
        self._ws = await websockets.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": self.base_url})
        self._reader = asyncio.create_task(self._read())
        self._pinger = asyncio.create_task(self._ping())
        await self.wait_for(lambda s: True)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in (self._pinger, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _ping(self) -> None:
        """A ping every ``PING_SECONDS``, as the console's page does (protocol.js): the
        server closes a socket silent for longer than its presence timeout (8 s), and an
        experimenter who only watches sends nothing else."""
        while True:
            await asyncio.sleep(PING_SECONDS)
            try:
                await self._ws.send(json.dumps({"type": "ping", "t": time.time() * 1000}))
            except websockets.ConnectionClosed:
                return  # the reader ends too; the caller sees the closed socket on its next command

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            if message.get("type") == "group.state":
                async with self._changed:
                    if self.state is None or message["version"] > self.state["version"]:
                        self.state = message
                        self._changed.notify_all()
            elif message.get("type") == "pong":
                self.last_pong = message
            elif message.get("type") == "error":
                await self._errors.put(GroupError(message.get("message", ""), code=message.get("code", "error")))

    async def wait_for(self, predicate: Callable[[dict], bool], *, timeout: float = 30) -> dict:
        """Wait until a snapshot satisfies ``predicate``; return it."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.state is not None and predicate(self.state)),
                                   timeout)  # fmt: skip
            return self.state

    async def _command(self, message: dict, done: Callable[[dict], bool], timeout: float) -> dict:
        while not self._errors.empty():
            self._errors.get_nowait()
        await self._ws.send(json.dumps(message))
        waiting = asyncio.create_task(self.wait_for(done, timeout=timeout))
        failing = asyncio.create_task(self._errors.get())
        finished, pending = await asyncio.wait({waiting, failing}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if failing in finished:
            raise failing.result()
        return waiting.result()

    def _version(self) -> int:
        return self.state["version"] if self.state else 0

    async def _simple(self, kind: str, done: Callable[[dict], bool], timeout: float = 15) -> dict:
        version = self._version()
        return await self._command({"type": kind}, lambda s: s["version"] > version and done(s), timeout)

    async def start(self) -> dict:
        return await self._simple("start", lambda s: s["phase"] != "waiting")

    async def advance(self, step: int | None = None, *, timeout: float = 15) -> dict:
        """Advance from ``step`` (default: the step last seen). Raises GroupError ``stale_step``."""
        step = self.state["step"] if step is None else step
        version = self._version()
        return await self._command(
            {"type": "advance", "step": step}, lambda s: s["version"] > version and s["step"] > step, timeout
        )

    async def pause(self) -> dict:
        return await self._simple("pause", lambda s: s["phase"] == "paused")

    async def resume(self) -> dict:
        return await self._simple("resume", lambda s: s["phase"] == "running")

    async def exit_loop(self) -> dict:
        return await self._simple("exit_loop", lambda s: s["exit_loop"])

    async def end(self) -> dict:
        return await self._simple("end", lambda s: s["phase"] == "ended")

    async def abort(self) -> dict:
        return await self._simple("abort", lambda s: s["phase"] == "aborted")

    async def set_context(self, patch: dict, *, timeout: float = 15) -> dict:
        """Merge ``patch`` into the shared context (``None`` deletes a key)."""

        def applied(s):
            return all(s["context"].get(k) == v for k, v in patch.items())

        return await self._command({"type": "set_context", "patch": patch}, applied, timeout)

    async def kick(self, participant: str, *, timeout: float = 15) -> dict:
        def kicked(s):
            return any(p["id"] == participant and p["status"] == "kicked" for p in s["participants"])

        return await self._command({"type": "kick", "participant": participant}, kicked, timeout)


async def _run_command(args, password: str) -> None:
    """One command of ``_main`` (``watch`` prints every state until interrupted)."""
    async with GroupController(args.url, username=args.user, password=password,
                               experimenter_code=args.code) as ctl:  # fmt: skip
        if args.command == "watch":
            print(json.dumps(ctl.state), flush=True)
            while True:
                version = ctl.state["version"]
                print(json.dumps(await ctl.wait_for(lambda s, v=version: s["version"] > v, timeout=3600)), flush=True)
        elif args.command == "context":
            state = await ctl.set_context(json.loads(args.argument or "{}"))
        elif args.command == "kick":
            state = await ctl.kick(args.argument)
        else:
            state = await getattr(ctl, args.command)()
        print(json.dumps(state))


def _main(argv=None) -> int:
    import argparse
    import getpass
    import os

    parser = argparse.ArgumentParser(prog="python -m groups.client", description="Control a live group session.")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--user", required=True)
    parser.add_argument("--code", required=True, help="experimenter code")
    parser.add_argument("command", choices=["watch", "start", "advance", "pause", "resume", "exit_loop", "end",
                                            "abort", "context", "kick"])  # fmt: skip
    parser.add_argument("argument", nargs="?", help="JSON patch for context, participant id for kick")
    args = parser.parse_args(argv)
    password = os.environ.get("ENSEMBLE_PASSWORD") or getpass.getpass(f"Password for {args.user}: ")

    try:
        asyncio.run(_run_command(args, password))
    except GroupError as exc:
        print(f"error: {exc.message} ({exc.code})")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
