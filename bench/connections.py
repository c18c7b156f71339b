"""Connections held and connect bursts.

    .venv/bin/python bench/connections.py [--n 1000] [--workers 2]

One daphne process (PostgreSQL, private Redis). Measures:

- RSS per held participant connection: (RSS with N participants of one group session
  connected - RSS before) / N;
- a burst of N simultaneous connects: every client starts at once; the time until the
  last one has its snapshot, how many succeeded, per-connect p50/p99/max;
- a burst of N simultaneous reconnects (every socket closed and opened again at once):
  the same figures, and that every reconnected client's first state is the current one.

Targets: N = 1000 connects all succeed within 5 s, each resynced; under 150 KiB RSS
per held connection. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.clients import ClientPool, Spec, participant_specs  # noqa: E402


async def run(n: int, workers: int) -> dict:
    common.raise_nofile()
    redis = common.PrivateRedis().start()
    env = common.server_env(embedded=False)
    common.ensure_database(env)
    group = common.prepare_group(env, n)
    server = common.Daphne(env)
    try:
        specs = participant_specs(group, [server])
        # Warm the server's code paths with one socket of another group session.
        warm = common.prepare_group(env, 1)
        warm_url = f"ws://127.0.0.1:{server.port}/ws/group/{warm['group_session']}/participant/"
        warm_cookie = f"{warm['run_cookie']}={warm['run_tokens'][0]}"
        warm_pool = ClientPool("ws", [Spec(warm_url, [("Origin", server.url), ("Cookie", warm_cookie)])], workers=1)
        await warm_pool.wait_connected()
        await warm_pool.stop()
        await asyncio.sleep(1.0)
        rss_before = common.rss_kib(server.pid)

        pool = ClientPool("ws", specs, workers=workers, connect_timeout=60)
        await asyncio.sleep(0)  # workers start their clients as soon as they run
        burst_started = time.monotonic()
        connected = await pool.wait_connected(timeout=120)
        await asyncio.sleep(2.0)
        rss_after = common.rss_kib(server.pid)
        count, last, steps = await pool.status(0.0)

        reconnect_at = time.monotonic()
        pool.reconnect_all()
        deadline = reconnect_at + 60
        while time.monotonic() < deadline:
            recount, relast, resteps = await pool.status(reconnect_at)
            if recount >= n:
                break
            await asyncio.sleep(0.1)
        results = await pool.stop()
    finally:
        server.stop()
        redis.stop()
    first = [c["connects"][0] for c in results if c["connects"]]
    connect_times = [done - start for start, done, ok in first if ok]
    # first connects: the workers start their clients when their process is up; measure from each start
    starts = [start for start, _, _ in first]
    second = [c["connects"][-1] for c in results if len(c["connects"]) >= 2]
    reconnect_times = [done - start for start, done, ok in second if ok]
    return {
        "benchmark": "connections",
        "n": n,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_per_connection_kib": round((rss_after - rss_before) / n, 1),
        "connect_burst": {
            "succeeded": sum(1 for _, _, ok in first if ok),
            "first_attempt_ok": connected,
            "wall_s": round((max((d for _, d, ok in first if ok), default=0) - min(starts, default=0)), 3),
            "from_bench_start_s": round(max((d for _, d, ok in first if ok), default=0) - burst_started, 3),
            "per_connect_ms": common.summary_ms(connect_times),
            "all_on_current_step": all(s == 0 for s in steps),
        },
        "reconnect_burst": {
            "succeeded": len(reconnect_times),
            "wall_s": round(relast - reconnect_at, 3) if recount else None,
            "per_connect_ms": common.summary_ms(reconnect_times),
            "all_on_current_step": all(s == 0 for s in resteps),
        },
        "load": common.load_average(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.n, args.workers))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
