"""Lockstep fan-out latency: from the experimenter's send to each participant's receipt
of the new step, against baselines measured in the same run on the same machine.

    .venv/bin/python bench/fanout.py [--sizes 10,100,500,1000] [--advances 10]
        [--variants ours,embedded,floor,stock,poll] [--processes 1|2] [--workers 2]

Variants (each a fresh server process; clients in ``--workers`` other processes):

- ``ours``: daphne + ``asgi:application``, PostgreSQL (``ensemble_bench``) and a private
  Redis (``--processes 2``: two daphne processes sharing them, participants split,
  the experimenter on the first);
- ``embedded``: daphne, SQLite and the in-process layer (``make run``'s defaults);
- ``floor``: a bare ``websockets`` server broadcasting the same payload (bench/baseline_ws.py);
- ``stock``: a minimal Channels consumer on stock channels-redis ``group_send`` (bench/stock_app.py);
- ``poll``: clients polling a database-backed HTTP endpoint every 0.5 s (bench/baseline_poll.py).

Participants are real WebSocket clients (``websockets``) that ack every state and ping
every 3 s. The experimenter advances K times, waiting each time until every
participant has the new step (plus 0.3 s). Prints one JSON object: per variant and N,
p50/p95/p99/max in ms, missing receipts, and our p99 as a ratio to each baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.clients import ClientPool, Spec, participant_specs  # noqa: E402

PAUSE = 0.3


async def _drain(ws) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:  # noqa: BLE001 - closed at the end
        pass


class Case:
    """Servers, participant specs and the controller of one variant at one N."""

    def __init__(self, variant: str, n: int, processes: int, pool: bool = False):
        self.variant, self.n, self.processes, self.pool = variant, n, processes, pool
        self.servers: list = []
        self.redis = None
        self.poll_conn = None
        self.sent_wall_ms: dict[int, float] = {}

    def start(self, redis: common.PrivateRedis | None) -> list[Spec]:
        v, n = self.variant, self.n
        if v in ("ours", "embedded"):
            env = common.server_env(embedded=v == "embedded")
            common.ensure_database(env)
            self.group = common.prepare_group(env, n)
            serve_env = common.server_env(embedded=False, pool=True) if self.pool and v == "ours" else env
            self.servers = [common.Daphne(serve_env) for _ in range(self.processes if v == "ours" else 1)]
            return participant_specs(self.group, self.servers)
        if v == "floor":
            port = common.free_port()
            self.servers = [_Proc([common.PY, "bench/baseline_ws.py", str(port)], port)]
        elif v == "stock":
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.stock_app", "REDIS_URL": common.redis_url()}
            self.servers = [common.Daphne(env, app="bench.stock_app:application")]
        elif v == "poll":
            import psycopg

            from bench import baseline_poll

            env = common.server_env(embedded=False)
            common.ensure_database(env)
            baseline_poll.reset(common.pg_url())
            port = common.free_port()
            self.servers = [_Proc([common.PY, "bench/baseline_poll.py", str(port)], port, env=env)]
            self.poll_conn = psycopg.connect(common.pg_url(), autocommit=True)
            return [Spec(f"http://127.0.0.1:{port}/state") for _ in range(n)]
        port = self.servers[0].port
        return [Spec(f"ws://127.0.0.1:{port}/p", [("Origin", f"http://127.0.0.1:{port}")]) for _ in range(n)]

    async def controller(self):
        import websockets

        if self.variant == "poll":
            return None
        server = self.servers[0]
        if self.variant in ("ours", "embedded"):
            url = f"ws://127.0.0.1:{server.port}/ws/group/{self.group['group_session']}/experimenter/"
            headers = [("Origin", server.url), ("Cookie", self.group["login_cookie"])]
        else:
            url, headers = f"ws://127.0.0.1:{server.port}/c", []
        ws = await websockets.connect(url, additional_headers=headers, compression=None, ping_interval=None,
                                      max_size=2**26)  # fmt: skip
        self.reader = asyncio.create_task(_drain(ws))
        return ws

    async def advance(self, ws, step: int) -> float:
        self.sent_wall_ms[step + 1] = time.time() * 1000
        sent = time.monotonic()
        if self.variant == "poll":
            from bench import baseline_poll

            await asyncio.to_thread(baseline_poll.advance, self.poll_conn, step)
        else:
            await ws.send(json.dumps({"type": "advance", "step": step}))
        return sent

    def pids(self) -> list[int]:
        return [s.pid for s in self.servers]

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
        if self.poll_conn is not None:
            self.poll_conn.close()


class _Proc(common.Server):
    def __init__(self, argv: list[str], port: int, env: dict | None = None):
        import subprocess

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(argv, cwd=common.ROOT, env=env or os.environ.copy(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        common.wait_http(self.url + "/healthz", self.proc)


async def run_case(variant: str, n: int, advances: int, *, processes: int = 1, workers: int = 2,
                   redis: common.PrivateRedis | None = None, profile: str | None = None,
                   db_pool: bool = False) -> dict:  # fmt: skip
    case = Case(variant, n, processes, db_pool)
    specs = case.start(redis)
    pool = None
    try:
        pool = ClientPool("poll" if variant == "poll" else "ws", specs, workers=workers)
        connected = await pool.wait_connected()
        ws = await case.controller()
        await asyncio.sleep(1.0)  # connection acks and presence settle
        rss = {pid: common.rss_kib(pid) for pid in case.pids()}
        pids = case.pids() if profile else []
        spies = [common.py_spy(pid, f"{profile}-{variant}-{n}-{i}") for i, pid in enumerate(pids)]
        sends: dict[int, float] = {}
        timeouts = 0
        for k in range(advances):
            sends[k + 1] = await case.advance(ws, k)
            if not await pool.wait_step(k + 1, timeout=30):
                timeouts += 1
            await asyncio.sleep(PAUSE)
        for spy in spies:
            spy.stop()
        results = await pool.stop()
        pool = None
        if ws is not None:
            await ws.close()
    finally:
        if pool is not None:
            await pool.stop()
        case.stop()
    # ours only: the state's server_ms (stamped in the transition, inside the advance's
    # transaction) splits each latency into "send -> transition" and "transition -> receipt"
    to_transition, after_transition = [], []
    for client in results:
        for k, (received, stamped) in client.get("server_ms", {}).items():
            if variant in ("ours", "embedded") and k in case.sent_wall_ms:
                to_transition.append((stamped - case.sent_wall_ms[k]) / 1000)
                after_transition.append((received - stamped) / 1000)
    latencies, missing = [], 0
    for client in results:
        for k, sent in sends.items():
            seen = client["seen"].get(k)
            if seen is None:
                missing += 1
            else:
                latencies.append(seen - sent)
    return {
        "variant": (variant if processes == 1 else f"{variant}x{processes}")
        + ("+pool" if db_pool and variant == "ours" else ""),
        "n": n,
        "advances": advances,
        "connected": connected,
        "missing": missing,
        "timeouts": timeouts,
        "doubled": sum(c["doubled"] for c in results),
        "out_of_order": sum(c["out_of_order"] for c in results),
        "server_rss_kib": sum(rss.values()),
        "latency_ms": common.summary_ms(latencies),
        "send_to_transition_ms": common.summary_ms(to_transition) if to_transition else None,
        "transition_to_receipt_ms": common.summary_ms(after_transition) if after_transition else None,
        "per_advance_max_ms": [
            round(max((c["seen"][k] - sent for c in results if k in c["seen"]), default=0) * 1000, 1)
            for k, sent in sends.items()
        ],
        "load": common.load_average(),
    }


def ratios(results: list[dict], ours: str = "ours") -> list[dict]:
    """Our p99 divided by each baseline's p99, per N (same run)."""
    by = {(r["variant"], r["n"]): r["latency_ms"].get("p99") for r in results}
    out = []
    for (variant, n), p99 in sorted(by.items()):
        if variant != ours or p99 is None:
            continue
        row = {"n": n, "ours_p99_ms": p99}
        for base in ("floor", "stock", "poll", "embedded", "oursx2"):
            other = by.get((base, n))
            if other:
                row[f"vs_{base}"] = round(p99 / other, 2)
        out.append(row)
    return out


async def main_async(args) -> dict:
    common.raise_nofile()
    sizes = [int(x) for x in args.sizes.split(",")]
    variants = args.variants.split(",")
    redis = common.PrivateRedis().start()
    results = []
    try:
        for n in sizes:
            for variant in variants:
                processes = args.processes if variant == "ours" else 1
                result = await run_case(variant, n, args.advances, processes=processes, workers=args.workers,
                                        redis=redis, profile=args.profile, db_pool=args.pool)  # fmt: skip
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    finally:
        redis.stop()
    return {"benchmark": "fanout", "processes": args.processes, "results": results, "ratios": ratios(results)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,500,1000")
    parser.add_argument("--advances", type=int, default=10)
    parser.add_argument("--variants", default="ours,embedded,floor,stock,poll")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", action="store_true", help="serve ours with DATABASE_URL=...?pool=true")
    parser.add_argument("--profile", help="py-spy the server processes during the advances (file prefix)")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
