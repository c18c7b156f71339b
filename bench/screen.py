"""Click -> new trial on screen: from the moment the group moves on to each participant's
page showing the new step, with protocol clients that do what a participant's page does,
against the bare ``websockets`` floor, a plain page GET and oTree, in one run.

    .venv/bin/python bench/screen.py [--sizes 10,100,200,500] [--steps 10]
        [--variants floor,live,reload,otree] [--workers 2] [--otree-max N] [--resend 0.1]

- ``live`` (bench/screen_liverun.py, bench/screen_live.py): the live participant page's
  protocol clients on daphne + PostgreSQL (``ensemble_bench``) + a private Redis: one
  document and one socket per participant; each step's state (t0: the experimenter's
  advance is sent) -> the step's ``group.content`` (or the content GET) parsed: "content
  ready" -> revealed at ``starts_at`` on the client's clock (its offset from the pongs):
  "onset". Answers by POST to the answer URL with the visit's nonce (10 % of the clients
  send each answer twice: the second must store nothing). Figures: frame, ready, onset p50/p95/p99, the onset spread per
  step, late reveals, the lead time the server chose, answers stored / lost / doubled.
- ``reload``: the same clients, but on each new step they GET the run URL (a reload: the
  live page showing that step); frame -> page against a plain GET of the home page by the
  same N clients at once (one warm-up round, then one per step).
- ``floor``: bench/baseline_ws.py, a bare ``websockets`` broadcast to N sockets
  (bench/fanout.py's ``floor`` variant, same N and number of advances).
- ``otree``: oTree (bench/otree-requirements.txt, its own virtualenv) as ``otree
  prodserver`` with bench/otree_app (all N players in one group, a Trial page and a
  WaitPage per round). Each round every player but one submits and waits on the wait
  page (its socket open, as the page's script does); ``SETTLE`` later the last player
  submits (t0); each player's next Trial page returned 200 is "content ready".

Prints one JSON object: per variant and N, p50/p95/p99/max in ms of the frame, click ->
content ready, click -> onset (oTree: click -> next page), the onset spread per step,
reload (frame -> page) and plain GET, answers stored / lost / doubled; and per N the
ratios in the same run (``ratios``). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, fanout, screen_clients, screen_liverun  # noqa: E402

PAUSE = 0.3  # between steps, as bench/fanout.py
# From the last answer (its waiting page back with its socket) to the advance (ours), and
# from the last waiting player's socket to the last submit (oTree): a person's reaction
# is longer; the server's after-work of the answers (presence of the new sockets) settles.
SETTLE = 0.5


class Pool:
    """Clients in ``workers`` processes (bench/screen_clients.py's worker)."""

    def __init__(self, kind: str, n: int, workers: int, options: dict):
        ctx = mp.get_context("spawn")
        chunk = -(-n // workers)
        self.parts = [list(range(n))[w * chunk : (w + 1) * chunk] for w in range(workers)]
        self.parts = [p for p in self.parts if p]
        self.conns, self.procs = [], []
        for part in self.parts:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=screen_clients.worker, args=(child, kind, part, options), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def worker_of(self, index: int) -> int:
        return next(w for w, part in enumerate(self.parts) if index in part)

    async def recv(self, w: int, timeout: float = 180):
        try:
            return await common.pipe_recv(self.conns[w], timeout)
        except TimeoutError:
            raise TimeoutError(f"client worker {w} did not answer within {timeout}s") from None

    def send(self, command: tuple, only: int | None = None) -> None:
        for w, conn in enumerate(self.conns):
            if only is None or w == only:
                conn.send(command)

    async def replies(self, only: int | None = None) -> list:
        return [await self.recv(w) for w in range(len(self.conns)) if only is None or w == only]

    async def call(self, command: tuple, only: int | None = None) -> list:
        self.send(command, only)
        return await self.replies(only)

    async def stop(self) -> list[dict]:
        self.send(("stop",))
        results = []
        for w in range(len(self.conns)):
            while (reply := await self.recv(w))[0] != "result":
                pass
            results.extend(reply[1])
        for proc in self.procs:
            proc.join(timeout=10)
        return results


def _set_up(replies: list) -> dict:
    failed = sum(r[2] for r in replies)
    return {"failed_setups": failed, "setup_errors": [e for r in replies for e in r[1]][:3]}


# ---- answers in the database -----------------------------------------------------------


def _stored(env: dict, group: dict, n: int, steps: int) -> dict:
    """Response rows of the answered steps: stored (participant-steps with a row), lost, doubled."""
    where = "FROM runner_response WHERE group_session_id = {0} AND step < {0}"
    counts = (f"SELECT (SELECT count(*) FROM (SELECT DISTINCT session_id, step {where}) a), "
              f"(SELECT count(*) FROM (SELECT DISTINCT session_id, step, item {where}) b), "
              f"(SELECT count(*) {where})")  # fmt: skip
    args = [group["group_session"], steps] * 3
    url = env["DATABASE_URL"]
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            distinct, items, rows = db.execute(counts.format("?"), args).fetchone()
    else:
        import psycopg

        with psycopg.connect(url.split("?")[0]) as db:
            distinct, items, rows = db.execute(counts.format("%s"), args).fetchone()
    return {"expected": n * steps, "stored": distinct, "lost": n * steps - distinct, "doubled": rows - items}


# ---- oTree ------------------------------------------------------------------------------


async def run_otree(n: int, steps: int, workers: int) -> dict:
    from bench import screen_otree

    server = screen_otree.OTreeServer(rounds=steps + 1)
    pool = None
    lasts: dict[int, int] = {}
    try:
        join_path = server.create_session(n)
        pool = Pool("otree", n, workers, {"port": server.port, "join_path": join_path})
        setup = _set_up(await pool.replies())
        for rnd in range(1, steps + 1):
            last = lasts[rnd] = (rnd - 1) % n  # the player whose submit completes the group
            await pool.call(("otree_answer", last))
            await asyncio.sleep(SETTLE)
            await pool.call(("otree_last", last), only=pool.worker_of(last))
            await pool.call(("otree_done",))
            await asyncio.sleep(PAUSE)
        results = await pool.stop()
        pool = None
    finally:
        if pool is not None:
            await pool.stop()
        server.stop()
    return {"variant": "otree", "n": n, "steps": steps, "otree": screen_otree.version(), **setup,
            **_otree_figures(results, lasts), "load": common.load_average()}  # fmt: skip


def _otree_figures(results: list[dict], lasts: dict[int, int]) -> dict:
    by_index = {c["index"]: c for c in results}
    t0 = {rnd + 1: by_index[last]["submitted"][rnd] for rnd, last in lasts.items()
          if rnd in by_index[last]["submitted"]}  # fmt: skip
    screen, posts, missing = [], [], 0
    for c in results:
        for k, sent in t0.items():
            if k in c["ready"]:
                screen.append(c["ready"][k] - sent)
            else:
                missing += 1
        posts += [p[1] for p in c["posts"]]
    expected = len(results) * len(lasts)
    # oTree stores an answer in the POST it redirects (a form error returns the form: 200);
    # a player has one row per round, so nothing can be doubled
    stored = sum(1 for c in results for p in c["posts"] if p[2] in (302, 303))
    return {"screen_ms": common.summary_ms(screen), "answer_post_ms": common.summary_ms(posts),
            "missing_screens": missing, "errors": [e for c in results for e in c["errors"]][:5],
            "sockets_opened": sum(c["sockets"] for c in results),
            "wait_sockets_opened": sum(c["wait_sockets"] for c in results),
            "http_connections": sum(c["http_connections"] for c in results),
            "answers": {"expected": expected, "stored": stored, "lost": expected - stored, "doubled": 0}}  # fmt: skip


# ---- the run ----------------------------------------------------------------------------


def ratios(results: list[dict]) -> list[dict]:
    """Per N, in the same run: the live clients' click -> content ready p99 / the floor's p99
    and / oTree's click -> next page p99, click -> onset p99 minus ready p99, the onset
    spread p95; the reload (frame -> live page) p99 / the plain GET p99 at the same N."""
    by = {(r["variant"], r["n"]): r for r in results}
    out = []
    for n in sorted({r["n"] for r in results}):
        floor, otree = by.get(("floor", n), {}).get("latency_ms", {}), by.get(("otree", n), {}).get("screen_ms", {})
        row: dict = {"n": n, "floor_p99_ms": floor.get("p99"), "otree_p99_ms": otree.get("p99")}
        live, reload_ = by.get(("live", n)), by.get(("reload", n))
        if live and live.get("ready_ms", {}).get("p99") is not None:
            ready, onset = live["ready_ms"]["p99"], live["onset_ms"].get("p99")
            row |= {
                "ready_p99_ms": ready,
                "onset_p99_ms": onset,
                "spread_p95_ms": live["onset_spread_ms"].get("p95"),
                "onset_minus_ready_ms": round(onset - ready, 2) if onset is not None else None,
                "ready_vs_floor": _ratio(ready, floor.get("p99")),
                "ready_vs_otree": _ratio(ready, otree.get("p99")),
            }
        if reload_ and reload_.get("reload_ms", {}).get("p99") is not None:
            row |= {
                "reload_p99_ms": reload_["reload_ms"]["p99"],
                "plain_get_p99_ms": reload_["plain_get_ms"].get("p99"),
                "reload_vs_plain_get": _ratio(reload_["reload_ms"]["p99"], reload_["plain_get_ms"].get("p99")),
            }
        out.append(row)
    return out


def _ratio(a, b) -> float | None:
    return round(a / b, 2) if a is not None and b else None


async def _variant(variant: str, n: int, args) -> dict:
    if variant == "floor":
        return await fanout.run_case("floor", n, args.steps, workers=args.workers)
    if variant in ("live", "reload"):
        return await screen_liverun.run_live(n, args.steps, args.workers, variant, resend=args.resend)
    return await run_otree(n, args.steps, args.workers)


async def main_async(args) -> dict:
    common.raise_nofile()
    sizes = sorted({int(x) for x in args.sizes.split(",")} | ({500} if args.with_500 else set()))
    variants = args.variants.split(",")
    redis = common.PrivateRedis().start() if {"live", "reload"} & set(variants) else None
    results = []
    try:
        for n in sizes:
            for variant in variants:
                if variant == "otree" and n > args.otree_max:
                    continue
                try:
                    result = await _variant(variant, n, args)
                except Exception as exc:  # noqa: BLE001 - one variant's failure is reported, the run goes on
                    result = {"variant": variant, "n": n, "error": repr(exc)[:500], "load": common.load_average()}
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    finally:
        if redis is not None:
            redis.stop()
    return {"benchmark": "screen", "steps": args.steps, "results": results, "ratios": ratios(results)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,200,500")
    parser.add_argument("--with-500", action="store_true", help="add N=500")
    parser.add_argument("--steps", type=int, default=10, help="advances (ours, floor) and rounds (oTree) per N")
    parser.add_argument("--variants", default="floor,live,reload,otree", help="of floor,live,reload,otree")
    parser.add_argument("--otree-max", type=int, default=10**6, help="oTree only up to this N")
    parser.add_argument("--resend", type=float, default=0.1, help="share of live clients that POST each answer twice")
    # 2, the number the targets were set with. 4 lowered our N=500 ready p99 (268-343 -> 194-202
    # ms) but the floor's light clients gained more (N=200 floor p99 ~45 -> 18 ms): the ratios
    # got worse (make bench of 12:22, docs/performance.md "N=500: the gathering and the advance").
    parser.add_argument("--workers", type=int, default=2, help="client processes (every variant)")
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
