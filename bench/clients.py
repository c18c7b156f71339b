"""Benchmark clients, run in their own processes (so client CPU is not the server's).

``ClientPool.start(specs, workers=2)`` splits the clients over worker processes. Each
worker holds its clients with the ``websockets`` library (mode ``ws``: every
``group.state`` is acknowledged, and a ``ping`` goes every 3 s, as protocol.js does) or
polls an HTTP URL every 0.5 s (mode ``poll``). A client applies a state only when its
``version`` is newer (as protocol.js), and records the monotonic time at which it first
saw each step. ``time.monotonic()`` is one clock for all processes on Linux, so the
parent subtracts its own send times.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import random
import time
from dataclasses import dataclass, field

from bench import common


@dataclass
class Spec:
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)


class Client:
    def __init__(self, index: int, spec: Spec):
        self.index, self.spec = index, spec
        self.version = 0
        self.step = -1
        self.seen: dict[int, float] = {}  # step -> first receipt (monotonic)
        self.server_ms: dict[int, tuple[float, int]] = {}  # step -> (receipt wall ms, the state's server_ms)
        self.lost_order = 0  # a step older than one already applied
        self.doubled = 0  # the same step applied again under a newer version after moving on
        self.connects: list[tuple[float, float | None, bool]] = []  # (start, first state, ok)
        self.open_intervals: list[list[float]] = []  # [established, closed]
        self.ws = None
        self.stop = False

    def apply(self, data: dict, now: float) -> None:
        version, step = data.get("version", 0), data.get("step", 0)
        if version <= self.version:
            return
        self.version = version
        if data.get("phase", "running") != "running":
            return
        if step != self.step:
            if step in self.seen:
                if step < self.step:
                    self.lost_order += 1
                else:
                    self.doubled += 1
            else:
                self.seen[step] = now
                if "server_ms" in data:
                    self.server_ms[step] = (time.time() * 1000, data["server_ms"])
            self.step = step


async def _ws_client(client: Client, first: asyncio.Event | None, reconnect_flag: dict) -> None:
    import websockets

    while not client.stop:
        started = time.monotonic()
        entry = [started, None, False]
        client.connects.append(entry)
        try:
            async with websockets.connect(
                client.spec.url, additional_headers=client.spec.headers, compression=None, ping_interval=None,
                open_timeout=60, max_size=2**24, close_timeout=2,
            ) as ws:  # fmt: skip
                client.ws = ws
                interval = [time.monotonic(), None]
                client.open_intervals.append(interval)
                pinger = asyncio.create_task(_pinger(ws))
                try:
                    async for message in ws:
                        now = time.monotonic()
                        data = json.loads(message)
                        if data.get("type") != "group.state":
                            continue
                        await ws.send(f'{{"type":"ack","version":{data["version"]}}}')
                        if entry[1] is None:
                            entry[1], entry[2] = now, True
                            interval[0] = now
                            if first is not None:
                                first.set()
                        client.apply(data, now)
                finally:
                    pinger.cancel()
                    interval[1] = time.monotonic()
        except Exception:  # noqa: BLE001 - counted as a failed (re)connect
            pass
        client.ws = None
        if client.stop:
            return
        if not reconnect_flag.get(client.index):
            await asyncio.sleep(0.5)  # the server closed us: come back like protocol.js
        reconnect_flag.pop(client.index, None)


async def _pinger(ws) -> None:
    await asyncio.sleep(random.uniform(0, 3))
    while True:
        await ws.send(json.dumps({"type": "ping", "t": time.time() * 1000}))
        await asyncio.sleep(3)


async def _poll_client(client: Client, period: float) -> None:
    from urllib.parse import urlparse

    url = urlparse(client.spec.url)
    request = f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}\r\nConnection: keep-alive\r\n\r\n".encode()
    await asyncio.sleep(random.uniform(0, period))
    reader = writer = None
    client.connects.append([time.monotonic(), None, False])
    while not client.stop:
        tick = time.monotonic()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(url.hostname, url.port)
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            body = await reader.readexactly(length)
            now = time.monotonic()
            if client.connects[-1][1] is None:
                client.connects[-1][1:] = [now, True]
            client.apply(json.loads(body), now)
        except Exception:  # noqa: BLE001 - reconnect on the next poll
            writer = None
        await asyncio.sleep(max(0.0, period - (time.monotonic() - tick)))


def participant_specs(group: dict, servers: list) -> list[Spec]:
    """A participant socket per run of ``group`` (``common.prepare_group``), participant i
    on ``servers[i mod len(servers)]`` (a balancer's round robin)."""
    gs, cookie = group["group_session"], group["run_cookie"]
    return [
        Spec(f"ws://127.0.0.1:{servers[i % len(servers)].port}/ws/group/{gs}/participant/",
             [("Origin", servers[i % len(servers)].url), ("Cookie", f"{cookie}={token}")])
        for i, token in enumerate(group["run_tokens"])
    ]  # fmt: skip


def _worker(conn, mode: str, specs: list[Spec], offset: int, options: dict) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_worker_main(conn, mode, specs, offset, options))


async def _worker_main(conn, mode, specs, offset, options) -> None:
    loop = asyncio.get_running_loop()
    clients = [Client(offset + i, spec) for i, spec in enumerate(specs)]
    reconnect_flag: dict[int, bool] = {}
    firsts = [asyncio.Event() for _ in clients]
    commands: asyncio.Queue = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    if mode == "ws":
        tasks = [asyncio.create_task(_ws_client(c, e, reconnect_flag)) for c, e in zip(clients, firsts, strict=True)]
    else:
        tasks = [asyncio.create_task(_poll_client(c, options.get("period", 0.5))) for c in clients]
        for e in firsts:
            e.set()
    try:
        async with asyncio.timeout(options.get("connect_timeout", 120)):
            await asyncio.gather(*(e.wait() for e in firsts))
    except TimeoutError:
        pass
    common.freeze_clients()
    conn.send(("connected", sum(1 for c in clients if c.connects and c.connects[0][2])))
    reported = -1
    while True:
        try:
            command = await asyncio.wait_for(commands.get(), 0.005)
        except TimeoutError:
            command = None
        if command is not None:
            kind = command[0]
            if kind == "stop":
                break
            if kind == "reconnect":  # close these clients' sockets; they come back at once
                for index in command[1]:
                    c = clients[index - offset]
                    if c.ws is not None:
                        reconnect_flag[c.index] = True
                        asyncio.create_task(c.ws.close())
            if kind == "status":  # clients whose latest connection started after t and got its snapshot
                since = command[1]
                done = [c.connects[-1][1] for c in clients if c.connects and c.connects[-1][0] >= since
                        and c.connects[-1][2]]  # fmt: skip
                conn.send(("status", (len(done), max(done, default=0.0), [c.step for c in clients])))
            if kind == "reconnect_all":
                for c in clients:
                    if c.ws is not None:
                        reconnect_flag[c.index] = True
                        asyncio.create_task(c.ws.close())
        low = min((c.step for c in clients), default=0)
        if low != reported:
            reported = low
            conn.send(("step", low))
            common.collect_clients()  # every client of the process has the step
    for c in clients:
        c.stop = True
        if c.ws is not None:
            await c.ws.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(
        (
            "result",
            [
                {"index": c.index, "seen": c.seen, "server_ms": c.server_ms, "step": c.step, "doubled": c.doubled,
                 "out_of_order": c.lost_order, "connects": c.connects, "open": c.open_intervals}
                for c in clients
            ],
        )
    )  # fmt: skip


class ClientPool:
    """Clients in ``workers`` processes. ``await wait_step(k)``: every client has seen step k."""

    def __init__(self, mode: str, specs: list[Spec], *, workers: int = 2, **options):
        ctx = mp.get_context("spawn")
        self.conns, self.procs, self.offsets = [], [], []
        chunk = -(-len(specs) // workers)
        for w in range(workers):
            part = specs[w * chunk : (w + 1) * chunk]
            if not part:
                continue
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, mode, part, w * chunk, options), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
            self.offsets.append((w * chunk, w * chunk + len(part)))
        self.low = [-1] * len(self.conns)
        self.connected = 0

    async def _recv(self, i: int, timeout: float):
        return await common.pipe_recv(self.conns[i], timeout)

    async def wait_connected(self, timeout: float = 180) -> int:
        total = 0
        for i in range(len(self.conns)):
            while True:
                kind, value = await self._recv(i, timeout)
                if kind == "connected":
                    total += value
                    break
                if kind == "step":
                    self.low[i] = value
        self.connected = total
        return total

    async def wait_step(self, step: int, timeout: float = 30) -> bool:
        for i in range(len(self.conns)):
            while self.low[i] < step:
                try:
                    kind, value = await self._recv(i, timeout)
                except TimeoutError:
                    return False
                if kind == "step":
                    self.low[i] = value
        return True

    def reconnect(self, indices: list[int]) -> None:
        for i, (lo, hi) in enumerate(self.offsets):
            mine = [x for x in indices if lo <= x < hi]
            if mine:
                self.conns[i].send(("reconnect", mine))

    async def status(self, since: float) -> tuple[int, float, list[int]]:
        """(clients reconnected since ``since`` with a snapshot, the last such receipt, steps)."""
        count, last, steps = 0, 0.0, []
        for i, conn in enumerate(self.conns):
            conn.send(("status", since))
            while True:
                kind, value = await self._recv(i, 60)
                if kind == "status":
                    count, last, steps = count + value[0], max(last, value[1]), steps + value[2]
                    break
                if kind == "step":
                    self.low[i] = value
        return count, last, steps

    def reconnect_all(self) -> None:
        for conn in self.conns:
            conn.send(("reconnect_all",))

    async def stop(self) -> list[dict]:
        results = []
        for conn in self.conns:
            conn.send(("stop",))
        for i in range(len(self.conns)):
            while True:
                kind, value = await self._recv(i, 120)
                if kind == "result":
                    results.extend(value)
                    break
        for proc in self.procs:
            proc.join(timeout=10)
        return results
