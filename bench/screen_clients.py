"""The participants of bench/screen.py in their worker processes: the live page's protocol
clients (``live``, ``reload``: bench/screen_live.py) and oTree's.

``OTreeClient`` (the peer): session-wide link -> participant start link -> the round's
Trial page; the page's auto-advance socket is held while the page is open, as oTree's
page JS does; the answer is the form's POST, then the WaitPage: either a redirect to the
next page (the last player), or the wait page whose socket (``/wait_page?...``, read
from the page as its script does) gets a message and the page reloads, is redirected,
and the next round's Trial page returns 200: content ready.

oTree's times are ``time.monotonic()`` (one clock for all processes on Linux), the live
clients' ``time.time()`` (they compare with ``starts_at``, server epoch ms).
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urlparse

from bench import common
from bench.keepalive import KeepAlive

STEP_FIELD = "_group_step"
WS_ARGS = dict(compression=None, ping_interval=None, open_timeout=60, close_timeout=2, max_size=2**24)
OTREE_STEP = re.compile(r'id="bench-step" data-step="(\d+)"')
OTREE_PAGE_SOCKET = re.compile(r'data-socket-url="([^"]+)"')
OTREE_WAIT_SOCKET = re.compile(r'makeReconnectingWebSocket\("([^"]+)"\)')


class OTreeClient:
    def __init__(self, index: int, port: int, join_path: str):
        self.index, self.port, self.join_path = index, port, join_path
        self.http = KeepAlive(port)
        self.round = 0
        self.path = ""
        self.page_socket = None
        self.page_socket_task: asyncio.Task | None = None
        self.submitted: dict[int, float] = {}  # round -> the POST's send time
        self.ready: dict[int, float] = {}  # round -> that round's Trial page returned 200
        self.errors: list[str] = []
        self.posts: list[tuple[int, float, object]] = []  # (round, POST and its redirects, the POST's status)
        self.first_status = 0
        self.sockets = self.wait_sockets = 0  # Trial pages' sockets, wait pages' sockets
        self.waiting = asyncio.Event()  # on the wait page with its socket open
        self.closing: list[asyncio.Task] = []  # sockets of pages left, closing in the background

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def setup(self) -> None:
        response = await self.follow("GET", self.join_path)
        if response.status != 200 or not self.on_trial(response):
            raise RuntimeError(f"oTree start link: HTTP {response.status}")

    async def follow(self, method: str, path: str, body: bytes = b""):
        """A request and its redirects, as a browser follows them."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {}
        response = await self.http.request(method, path, body, headers)
        self.first_status = response.status
        while response.status in (301, 302, 303, 307):
            path = urlparse(response.location).path or response.location
            response = await self.http.request("GET", path)
        self.path = path
        return response

    def on_trial(self, response) -> bool:
        found = OTREE_STEP.search(response.text())
        if not found:
            return False
        self.round = int(found.group(1))
        socket_url = OTREE_PAGE_SOCKET.search(response.text())
        self.page_socket_task = asyncio.create_task(self.hold_page_socket(socket_url.group(1)))
        return True

    async def hold_page_socket(self, path: str) -> None:
        """The Trial page's auto-advance socket (page-websocket-redirect.js), open until the page is left."""
        import websockets

        try:
            async with websockets.connect(self.ws_url(path), **WS_ARGS) as ws:
                self.sockets += 1
                self.page_socket = ws
                await ws.wait_closed()
        except Exception:  # noqa: BLE001 - the page works without it
            pass

    async def answer(self) -> None:
        """Submit this round's Trial page; return once the next round's Trial page is shown."""
        import websockets

        rnd = self.round
        self._leave_page()
        self.submitted[rnd] = time.monotonic()
        response = await self.follow("POST", self.path, b"rating=4")
        self.posts.append((rnd, time.monotonic() - self.submitted[rnd], self.first_status))
        while not OTREE_STEP.search(response.text()):
            wait_socket = OTREE_WAIT_SOCKET.search(response.text())
            if response.status != 200 or not wait_socket:
                self.errors.append(f"round {rnd}: HTTP {response.status} without a trial or wait page")
                return
            ws = await websockets.connect(self.ws_url(wait_socket.group(1)), **WS_ARGS)
            self.wait_sockets += 1
            self.waiting.set()
            try:
                await ws.recv()  # any message: the wait page reloads at once
            finally:  # its socket closes while the browser already loads the page
                self.closing.append(asyncio.create_task(ws.close()))
            response = await self.follow("GET", self.path)
        now = time.monotonic()
        if self.on_trial(response) and self.round == rnd + 1:
            self.ready[self.round] = now
        else:
            self.errors.append(f"round {rnd}: next page shows round {self.round}")

    def _leave_page(self) -> None:
        """The browser leaves the page at once; the page's socket closes meanwhile."""
        if self.page_socket is not None:
            self.closing.append(asyncio.create_task(self.page_socket.close()))
            self.page_socket = None
        elif self.page_socket_task is not None:  # still connecting: the page is gone first
            self.page_socket_task.cancel()
        self.page_socket_task = None

    async def close(self) -> None:
        self._leave_page()
        await asyncio.gather(*self.closing, return_exceptions=True)
        self.http.close()

    def result(self) -> dict:
        return {"index": self.index, "submitted": self.submitted, "ready": self.ready, "errors": self.errors,
                "posts": self.posts, "sockets": self.sockets, "wait_sockets": self.wait_sockets,
                "http_connections": self.http.opened}  # fmt: skip


# ---- worker processes -----------------------------------------------------------------


def worker(conn, kind: str, indices: list[int], options: dict) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    asyncio.run(_worker_main(conn, kind, indices, options))


async def _all(clients, method: str, timeout: float) -> list:
    return await asyncio.wait_for(
        asyncio.gather(*(getattr(c, method)() for c in clients), return_exceptions=True), timeout
    )


async def _worker_main(conn, kind: str, indices: list[int], options: dict) -> None:
    commands: asyncio.Queue = asyncio.Queue()
    asyncio.get_running_loop().add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    if kind in ("live", "reload"):
        from bench.screen_live import LiveClient

        clients = [LiveClient(i, options["port"], options["group"], kind, options.get("resend", 0)) for i in indices]
    else:
        clients = [OTreeClient(i, options["port"], options["join_path"]) for i in indices]
    gate = asyncio.Semaphore(20)  # participants arrive over a moment, not in one burst

    async def setup(client):
        async with gate:
            await client.setup()

    outcomes = await asyncio.gather(*(setup(c) for c in clients), return_exceptions=True)
    failed = [repr(e) for e in outcomes if e]
    everyone, clients = clients, [c for c, e in zip(clients, outcomes, strict=True) if not e]  # commands: set up ones
    if kind != "otree":  # every client set up has its socket and first state
        await _wait(lambda: all(c.connected.is_set() for c in clients), 60)
    common.freeze_clients()
    conn.send(("set_up", failed[:3], len(failed)))
    answering: list[asyncio.Task] = []
    while (command := await commands.get())[0] != "stop":
        answering = await _command(clients, command, answering)
        conn.send(("done", command[0]))
        if not answering:  # the parent pauses between commands; nothing is under way or measured now
            common.collect_clients()
    for task in answering:
        task.cancel()
    await asyncio.gather(*(c.close() for c in everyone), return_exceptions=True)
    conn.send(("result", [c.result() for c in everyone]))


async def _command(clients: list, command: tuple, answering: list[asyncio.Task]) -> list[asyncio.Task]:
    """Carry out one command of the parent; returns the oTree answers still under way."""
    op, arg = command[0], command[1] if len(command) > 1 else None
    if op in ("answer", "plain_get"):  # live, reload: everyone at once
        await _all(clients, op, 120)
    elif op == "clock_settled":  # every page's clock estimate is good (or ``arg`` seconds passed)
        from realtime.clock import GOOD_RTT_MS

        await _wait(lambda: all(c.rtt_ms is not None and c.rtt_ms <= GOOD_RTT_MS for c in clients), arg)
    elif op == "await_step":  # every client has the step's page (or was shown another)
        await _wait(lambda: all(c.settled(arg) for c in clients), 120)
    elif op == "otree_answer":  # everyone but player ``arg`` submits and waits on the wait page
        others = [c for c in clients if c.index != arg]
        for c in others:
            c.waiting.clear()
        tasks = [asyncio.create_task(c.answer()) for c in others]
        await _wait(lambda: all(c.waiting.is_set() or t.done() for c, t in zip(others, tasks, strict=True)), 120)
        return tasks
    elif op == "otree_last":
        return [*answering, *(asyncio.create_task(c.answer()) for c in clients if c.index == arg)]
    elif op == "otree_done":
        if answering:
            await asyncio.wait(answering, timeout=120)
        return []
    return answering


async def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True
