"""The live page's variants of bench/screen.py: ``live`` (protocol clients doing what the
live page does, bench/screen_live.py) and ``reload`` (the same clients reloading the
page on each new step), on daphne + PostgreSQL + a private Redis (or the embedded
defaults), a group session of N on bench/bench_group.yaml's group_trial.

The clients open their live pages while the group session waits; once every page's
clock estimate is good (best round trip <= realtime.clock.GOOD_RTT_MS, at most
``CLOCK_SETTLE`` s: people join over a minute, not in one burst) the experimenter
starts it (step 0, not measured). Each step: every client answers the step on its screen
(``resend`` of them POST it twice with the same nonce); ``SETTLE`` after the last reply
the experimenter advances (t0: the advance is sent, wall clock); each client gets the
state, its content, and reveals it at ``starts_at``; the next step begins ``PAUSE``
after every client revealed it. ``reload`` also times, before the steps, a plain GET of
the home page by the same N clients at once (one warm-up round, then one per step): the
reload's yardstick at the same N.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from bench import common, fanout

PAUSE = 0.3
SETTLE = 0.5
CLOCK_SETTLE = 15.0  # seconds, at most, for every page's clock estimate before the start


async def run_live(n: int, steps: int, workers: int, mode: str = "live", *, embedded: bool = False,
                   resend: float = 0.1) -> dict:  # fmt: skip
    from bench.screen import Pool, _set_up, _stored

    env = common.server_env(embedded=embedded)
    common.ensure_database(env)
    group = common.prepare_group(env, n, started=False)  # the clients wait for the start, as pages do
    server = common.Daphne(env)
    pool = None
    t0: dict[int, float] = {}
    try:
        pool = Pool(mode, n, workers, {"port": server.port, "group": group, "resend": resend})
        setup = _set_up(await pool.replies())
        if setup["failed_setups"] == n:  # no live page: nothing to measure
            steps = 0
        for _ in range(steps + 1 if mode == "reload" and steps else 0):  # the plain GET; the first round warms up
            await pool.call(("plain_get",))
            await asyncio.sleep(PAUSE)
        url = f"ws://127.0.0.1:{server.port}/ws/group/{group['group_session']}/experimenter/"
        headers = [("Origin", server.url), ("Cookie", group["login_cookie"])]
        async with await _experimenter(url, headers) as boss:
            drain = asyncio.create_task(fanout._drain(boss))
            await asyncio.sleep(0.5)
            # People join a session over a minute, not in one burst: their pages' clock
            # estimates are good before the start. Here all N open at once; wait (at most
            # CLOCK_SETTLE s) until every page has had a short round trip, as they would have.
            await pool.call(("clock_settled", CLOCK_SETTLE))
            if steps:  # the start: step 0 on every screen (not measured: it warms up)
                pool.send(("await_step", 0))
                await boss.send(json.dumps({"type": "start"}))
                await pool.replies()
                await asyncio.sleep(PAUSE)
            for k in range(steps):
                await pool.call(("answer",))
                await asyncio.sleep(SETTLE)
                pool.send(("await_step", k + 1))
                t0[k + 1] = time.time()
                await boss.send(json.dumps({"type": "advance", "step": k}))
                await pool.replies()
                await asyncio.sleep(PAUSE)
            drain.cancel()
        results = await pool.stop()
        pool = None
        if os.environ.get("BENCH_SCREEN_DUMP"):  # every client's record (pongs, onsets), to look into one run
            path = Path(os.environ["BENCH_SCREEN_DUMP"]) / f"{mode}-{n}.json"
            path.write_text(json.dumps({"t0": t0, "clients": results}))
    finally:
        if pool is not None:
            await pool.stop()
        server.stop()
    return {"variant": mode if not embedded else f"{mode}-embedded", "n": n, "steps": steps, **setup,
            **figures(results, t0, mode), "answers": _stored(env, group, n, steps),
            "load": common.load_average()}  # fmt: skip


async def _experimenter(url: str, headers: list):
    """The experimenter's socket (a loaded server may refuse a connect now and then: its handshake
    outlives daphne's application timeout and is rejected with 403; three tries)."""
    import websockets

    for attempt in range(3):
        try:
            return await websockets.connect(url, additional_headers=headers, compression=None, ping_interval=None,
                                            max_size=2**26, open_timeout=60)  # fmt: skip
        except (OSError, websockets.exceptions.InvalidMessage, websockets.exceptions.InvalidStatus, TimeoutError):
            if attempt == 2:
                raise
            await asyncio.sleep(2)


def _since(results: list[dict], key: str, t0: dict[int, float]) -> list[float]:
    return [c[key][k] - sent for c in results for k, sent in t0.items() if k in c[key]]


def spreads(results: list[dict], t0: dict[int, float]) -> dict:
    """Per step, the last onset minus the first (ms): as achieved (the machine's clock) and
    as reported by the clients (the server clock by their estimates); late clients."""
    achieved, reported, late, lead = [], [], [], []
    for k, sent in t0.items():
        onsets = [c["onset"][k] for c in results if k in c["onset"]]
        said = [c["reported"][k] for c in results if k in c["reported"]]
        if len(onsets) > 1:
            achieved.append(max(onsets) - min(onsets))
        if len(said) > 1:
            reported.append((max(a for a, _ in said) - min(a for a, _ in said)) / 1000)
        late.append(sum(1 for _, ms in said if ms >= 1))  # late by a millisecond or more
        lead += [c["starts_at"][k] / 1000 - sent for c in results[:1] if k in c["starts_at"]]
    return {"onset_spread_ms": common.summary_ms(achieved), "reported_spread_ms": common.summary_ms(reported),
            "late_per_step": late, "lead_ms": common.summary_ms(lead),
            "lead_per_step_ms": [round(x * 1000) for x in lead],
            "spread_per_step_ms": [round(x * 1000, 1) for x in achieved]}  # fmt: skip


def figures(results: list[dict], t0: dict[int, float], mode: str) -> dict:
    statuses: dict[str, int] = {}
    for c in results:
        for p in c["posts"]:
            key = f"{p[2]} stored={p[3]}"
            statuses[key] = statuses.get(key, 0) + 1
    shown = "ready" if mode == "reload" else "onset"
    out = {
        "frame_ms": common.summary_ms(_since(results, "frame", t0)),
        "ready_ms": common.summary_ms(_since(results, "ready", t0)),
        "answer_post_ms": common.summary_ms([p[1] for c in results for p in c["posts"]]),
        "answer_statuses": statuses,
        "missing_screens": sum(1 for c in results for k in t0 if k not in c[shown]),
        "wrong_pages": sum(len([k for k in c["wrong_page"] if k in t0]) for c in results),
        "errors": [e for c in results for e in c["errors"]][:5],
        "sockets_opened": sum(c["sockets"] for c in results),
        "http_connections": sum(c["http_connections"] for c in results),
        "resending_clients": sum(1 for c in results if c["resend"]),
    }
    if mode == "reload":
        reload_ = [c["ready"][k] - c["frame"][k] for c in results for k in t0 if k in c["ready"] and k in c["frame"]]
        out["reload_ms"] = common.summary_ms(reload_)
        out["plain_get_ms"] = common.summary_ms([p[0] for c in results for p in c["plain"][1:]])
    else:
        out["onset_ms"] = common.summary_ms(_since(results, "onset", t0))
        out["content_ms"] = common.summary_ms(
            [c["ready"][k] - c["frame"][k] for c in results for k in t0 if k in c["ready"] and k in c["frame"]]
        )
        out |= spreads(results, t0)
        # the clocks are one (one machine): an offset estimate is its own error
        out["offset_error_ms"] = common.summary_ms(
            [abs(c["offsets"][k]) / 1000 for c in results for k in t0 if k in c["offsets"]]
        )
        # the round trip of each of those estimates: the error is at most half of it
        out["clock_rtt_ms"] = common.summary_ms(
            [c["rtts"][k] / 1000 for c in results for k in t0 if c.get("rtts", {}).get(k) is not None]
        )
    return out
