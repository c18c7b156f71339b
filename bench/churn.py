"""Churn: many broadcasts while participants reconnect and Redis restarts once.

    .venv/bin/python bench/churn.py [--broadcasts 10000] [--n 500] [--reconnect-per-minute 0.10]

One daphne process (PostgreSQL, a private Redis). The experimenter advances
``--broadcasts`` times; after each advance it waits until every participant has the new
step (a participant that is reconnecting gets it in its snapshot), re-sending the
advance if it was refused (e.g. while Redis is down: the advance fails and changes
nothing). Meanwhile ``--reconnect-per-minute`` of the participants (10%) drop their
socket and reconnect, spread evenly over each minute, and half way through the private
Redis is killed and started again (empty: no persistence).

Each client applies a state only when its version is newer (as protocol.js) and counts,
per step: **lost** (a step it never had), **doubled** (a step applied again after moving
on), **out of order** (an older step applied after a newer one). Target: all 0, and
every participant ends on the last step. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.clients import ClientPool, participant_specs  # noqa: E402


async def _read_errors(ws, errors: list) -> None:
    try:
        async for message in ws:
            if '"type":"error"' in message:
                errors.append(json.loads(message).get("code"))
    except Exception:  # noqa: BLE001 - closed at the end
        pass


async def run(broadcasts: int, n: int, per_minute: float, workers: int) -> dict:
    import websockets

    common.raise_nofile()
    redis = common.PrivateRedis().start()
    env = common.server_env(embedded=False)
    common.ensure_database(env)
    group = common.prepare_group(env, n)
    server = common.Daphne(env)
    errors: list[str] = []
    resent = restarts = reconnects = 0
    restart = None
    try:
        gs = group["group_session"]
        specs = participant_specs(group, [server])
        pool = ClientPool("ws", specs, workers=workers)
        await pool.wait_connected()
        ws = await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws/group/{gs}/experimenter/",
            additional_headers=[("Origin", server.url), ("Cookie", group["login_cookie"])],
            compression=None, ping_interval=None, max_size=2**26,
        )  # fmt: skip
        reader = asyncio.create_task(_read_errors(ws, errors))
        await asyncio.sleep(1.0)
        started = time.monotonic()
        per_second = n * per_minute / 60
        owed = 0.0
        last_tick = started
        restart_at = broadcasts // 2
        durations = []
        for k in range(broadcasts):
            if k == restart_at and restarts == 0:
                restarts = 1  # killed and started again while the advances go on
                restart = asyncio.create_task(asyncio.to_thread(redis.restart, 1.0))
            t0 = time.monotonic()
            await ws.send(json.dumps({"type": "advance", "step": k}))
            while not await pool.wait_step(k + 1, timeout=3):
                resent += 1  # refused (Redis down) or lost: the console shows step k, so press again
                await ws.send(json.dumps({"type": "advance", "step": k}))
                if time.monotonic() - t0 > 120:
                    raise RuntimeError(f"step {k + 1} never reached every participant")
            durations.append(time.monotonic() - t0)
            now = time.monotonic()
            owed += (now - last_tick) * per_second
            last_tick = now
            if owed >= 1:
                chosen = random.sample(range(n), int(owed))
                owed -= len(chosen)
                reconnects += len(chosen)
                pool.reconnect(chosen)
        elapsed = time.monotonic() - started
        if restarts:
            await restart
        await asyncio.sleep(1.5)
        results = await pool.stop()
        await ws.close()
        reader.cancel()
    finally:
        server.stop()
        redis.stop()
    lost = sum(1 for c in results for k in range(1, broadcasts + 1) if k not in c["seen"])
    return {
        "benchmark": "churn",
        "n": n,
        "broadcasts": broadcasts,
        "seconds": round(elapsed, 1),
        "broadcasts_per_second": round(broadcasts / elapsed, 1),
        "reconnects": reconnects,
        "reconnect_share_per_minute": round(reconnects / n / (elapsed / 60), 3),
        "redis_restarts": restarts,
        "advances_resent": resent,
        "experimenter_errors": {code: errors.count(code) for code in set(errors)},
        "lost": lost,
        "doubled": sum(c["doubled"] for c in results),
        "out_of_order": sum(c["out_of_order"] for c in results),
        "all_end_on_last_step": all(c["step"] == broadcasts for c in results),
        "step_round_trip_ms": common.summary_ms(durations),
        "load": common.load_average(),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broadcasts", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--reconnect-per-minute", type=float, default=0.10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.broadcasts, args.n, args.reconnect_per_minute, args.workers))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
