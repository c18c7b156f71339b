"""Answers at once: N participants post their answer to the current lockstep step at the
same moment (HTTP form POSTs to ``/run/<id>/``, PostgreSQL).

    .venv/bin/python bench/submit.py [--n 500] [--workers 2] [--processes 1|2]

One daphne process (PostgreSQL, private Redis), a running group session of N runs on
the group_trial form (bench/bench_group.yaml). Each client first GETs its form (CSRF
cookie and token, the hidden step field), then, in ``--workers`` client processes, all
POST their answer at once. Reports answers per second (N / the time from the first
POST to the last response), per-POST p50/p95/p99/max, the statuses, the Response
rows stored for that step (every one must be), the CPU the servers and PostgreSQL
spent, and in the same run the floor for any Django design: the same clients GET the
home page (a template, no database) at once. Target: 500 answers, all stored, p99
under 2 s. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import multiprocessing as mp
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

INPUT = re.compile(r"<input\b[^>]*>", re.I)
ATTR = re.compile(r'(\w[\w-]*)\s*=\s*"([^"]*)"')


async def http(port: int, method: str, path: str, cookies: dict, body: bytes = b"", headers: dict | None = None):
    """One HTTP/1.1 request on its own connection: (status, headers, body, set-cookies)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}"]  # fmt: skip
    if cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, content = raw.partition(b"\r\n\r\n")
    head_lines = head.decode("latin-1").split("\r\n")
    status = int(head_lines[0].split()[1])
    got = {}
    set_cookies = {}
    for line in head_lines[1:]:
        key, _, value = line.partition(":")
        got[key.strip().lower()] = value.strip()
        if key.strip().lower() == "set-cookie":
            name, _, rest = value.strip().partition("=")
            set_cookies[name] = rest.split(";", 1)[0]
    return status, got, content, set_cookies


async def fetch_form(port: int, experiment: int, cookies: dict) -> dict:
    """GET the form; return the fields to post (hidden inputs + an answer) and cookies."""
    status, _, body, set_cookies = await http(port, "GET", f"/run/{experiment}/", cookies)
    if status != 200:
        raise RuntimeError(f"GET form: HTTP {status}")
    cookies = {**cookies, **set_cookies}
    fields = {}
    for tag in INPUT.findall(body.decode()):
        attrs = {k.lower(): html.unescape(v) for k, v in ATTR.findall(tag)}
        name = attrs.get("name")
        if not name:
            continue
        if attrs.get("type", "text").lower() == "hidden":
            fields[name] = attrs.get("value", "")
        elif name.endswith("rating"):
            fields[name] = "4"
    return {"fields": fields, "cookies": cookies}


def _post_worker(conn, experiment: int, forms: list[dict]) -> None:
    async def main():
        async def post(form):
            body = urlencode(form["fields"]).encode()
            token = form["cookies"].get("csrftoken", "")
            started = time.monotonic()
            try:
                port = form["port"]
                status, _, _, _ = await http(
                    port, "POST", f"/run/{experiment}/", form["cookies"], body,
                    {"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": token,
                     "Origin": f"http://127.0.0.1:{port}", "Referer": f"http://127.0.0.1:{port}/run/{experiment}/"},
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - reported as a failed post
                status = repr(exc)
            return started, time.monotonic(), status

        async def page(form):  # the floor: the same connection pattern, the cheapest page
            started = time.monotonic()
            try:
                status, _, _, _ = await http(form["port"], "GET", "/", {})
            except Exception as exc:  # noqa: BLE001 - reported as a failed request
                status = repr(exc)
            return started, time.monotonic(), status

        while (what := conn.recv()) != "stop":
            conn.send(await asyncio.gather(*((post if what == "answers" else page)(f) for f in forms)))

    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    asyncio.run(main())


async def run(n: int, workers: int, profile: str | None = None, pool: bool = False, processes: int = 1) -> dict:
    import psycopg

    common.raise_nofile()
    redis = common.PrivateRedis().start()
    env = common.server_env(embedded=False)
    common.ensure_database(env)
    group = common.prepare_group(env, n)
    servers = [common.Daphne(common.server_env(embedded=False, pool=pool)) for _ in range(processes)]
    try:
        experiment, cookie = group["experiment"], group["run_cookie"]
        semaphore = asyncio.Semaphore(20)

        async def prepare(i, token):  # participant i is served by process i mod P (a balancer's round robin)
            port = servers[i % processes].port
            async with semaphore:
                return {**await fetch_form(port, experiment, {cookie: token}), "port": port}

        forms = await asyncio.gather(*(prepare(i, t) for i, t in enumerate(group["run_tokens"])))
        ctx = mp.get_context("spawn")
        chunk = -(-n // workers)
        pipes, procs = [], []
        for w in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_post_worker, args=(child, experiment, forms[w * chunk : (w + 1) * chunk]))
            proc.start()
            pipes.append(parent)
            procs.append(proc)
        await asyncio.sleep(1.5)  # the workers are up
        floor = await _all_at_once(pipes, "page")
        await asyncio.sleep(1)
        spy = common.py_spy(servers[0].pid, profile) if profile else None
        cpu = _servers_cpu(servers), common.postgres_cpu_seconds()
        results = await _all_at_once(pipes, "answers")
        user, system = _servers_cpu(servers)
        cpu = user - cpu[0][0], system - cpu[0][1], common.postgres_cpu_seconds() - cpu[1]
        if spy:
            spy.stop()
        for parent in pipes:
            parent.send("stop")
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for server in servers:
            server.stop()
        redis.stop()
    with psycopg.connect(common.pg_url()) as db:
        stored = db.execute(
            "SELECT count(DISTINCT session_id), count(*) FROM runner_response WHERE group_session_id = %s AND step = 0",
            [group["group_session"]],
        ).fetchone()
    first = min(r[0] for r in results)
    last = max(r[1] for r in results)
    return {
        "benchmark": "submit",
        "n": n,
        "processes": processes,
        "database_pool": pool,
        "statuses": _statuses(results),
        "stored_sessions": stored[0],
        "stored_rows": stored[1],
        "all_stored": stored[0] == n,
        "wall_s": round(last - first, 3),
        "answers_per_second": round(n / (last - first), 1),
        "post_ms": common.summary_ms(_durations(results)),
        # CPU time spent while the answers were posted: the server processes, and PostgreSQL
        "server_cpu_s": {"user": round(cpu[0], 2), "system": round(cpu[1], 2)},
        "postgres_cpu_s": round(cpu[2], 2),
        # The floor for any Django design here: the same N clients GET the home page (a
        # template, no database) at once, through the same server processes.
        "page_floor": {"statuses": _statuses(floor), "ms": common.summary_ms(_durations(floor))},
        "p99_over_page_floor": round(
            common.percentile(_durations(results), 99) / common.percentile(_durations(floor), 99), 2
        ),
        "load": common.load_average(),
    }


async def _all_at_once(pipes, what: str) -> list:
    for parent in pipes:
        parent.send(what)
    results = []
    for parent in pipes:
        results.extend(await asyncio.to_thread(parent.recv))
    return results


def _durations(results) -> list[float]:
    return [r[1] - r[0] for r in results]


def _statuses(results) -> dict:
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[2])] = statuses.get(str(r[2]), 0) + 1
    return statuses


def _servers_cpu(servers) -> tuple[float, float]:
    """(user, system) CPU seconds of all the server processes so far."""
    times = [common.cpu_seconds(server.pid, split=True) for server in servers]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", help="py-spy the server during the POSTs (file prefix)")
    parser.add_argument("--pool", action="store_true", help="serve with DATABASE_URL=...?pool=true")
    parser.add_argument("--processes", type=int, default=1, help="daphne processes (participants split between them)")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.n, args.workers, args.profile, args.pool, args.processes))


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
