"""Baseline (2), the PyEnsemble way: participants poll an HTTP endpoint backed by the
database every 0.5 s for the state.

    DATABASE_URL=postgres://.../ensemble_bench python bench/baseline_poll.py PORT

A small asyncio HTTP/1.1 server (keep-alive); every ``GET /state`` reads the state row
(``bench_poll_state``) from PostgreSQL through a pool of 8 connections. Generous to the
baseline: no Django, no WSGI thread per request. The benchmark moves the state with an
``UPDATE`` (``bench.baseline_poll.advance``). ``/healthz`` answers 200.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import psycopg

TABLE = "bench_poll_state"


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, version int, step int)")
        conn.execute(f"DELETE FROM {TABLE}")
        conn.execute(f"INSERT INTO {TABLE} VALUES (1, 1, 0)")


def advance(conn, step: int) -> None:
    conn.execute(f"UPDATE {TABLE} SET version = version + 1, step = %s WHERE id = 1", [step + 1])


async def main(port: int, url: str) -> None:
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await psycopg.AsyncConnection.connect(url, autocommit=True))

    async def state() -> bytes:
        conn = await pool.get()
        try:
            cur = await conn.execute(f"SELECT version, step FROM {TABLE} WHERE id = 1")
            version, step = await cur.fetchone()
        finally:
            pool.put_nowait(conn)
        return json.dumps({"type": "group.state", "version": version, "step": step, "phase": "running"}).encode()

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                body = await state() if path.startswith(b"/state") else b"ok\n"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), os.environ["DATABASE_URL"]))
