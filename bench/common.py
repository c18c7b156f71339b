"""Shared plumbing of the socket benchmarks: a private Redis, the bench database,
daphne processes, group sessions, statistics.

Nothing here touches the shared Redis on 6379: benchmarks start their own
``redis-server`` (``BENCH_REDIS_PORT``, default 6391, or one derived from ``BENCH_DB``) and their own PostgreSQL
database (``ensemble_bench``, or ``BENCH_DB``, on the server of ``DATABASE_URL``; a branch
whose migrations differ from another's running benchmarks at the same time names its own); the embedded
variant uses an SQLite file under ``BENCH_VAR`` (default /tmp/ensemble-bench-var).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
VAR = Path(os.environ.get("BENCH_VAR", Path(tempfile.gettempdir()) / "ensemble-bench-var"))
BASE_DB = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/ensemble"
BENCH_DB = os.environ.get("BENCH_DB", "ensemble_bench")
# One port per bench database: two runs on one port shared one Redis (the second's start found the
# first's answering), and the first's stop took it from the second mid-run (state subscription lost).
REDIS_PORT = int(
    os.environ.get("BENCH_REDIS_PORT", 6391 + (zlib.crc32(BENCH_DB.encode()) % 400 if "BENCH_DB" in os.environ else 0))
)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def freeze_clients() -> None:
    """In a client process, once its clients are set up (sockets open, pages read): move
    what it holds into the permanent generation (``gc.freeze``), as the server does at
    start-up (``project/core/gc_tuning.py``), and stop automatic collection: the process
    collects between steps instead (``collect_clients``). Here several hundred simulated
    pages share one heap, and a collection walking all of them stopped every page of the
    process at once, something no browser page's own collector does to the others: a full
    one (20-45 ms before the freeze; 10-80 ms after it, logged with ``gc.callbacks`` at
    N=500) fell inside a step's delivery, and since the clients of a run allocate alike,
    at the same step of every run (the 5th), making a tenth of that step's pages late.
    Used by every client process (ours, the floor's, oTree's), so the ratios compare the
    servers."""
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()


def collect_clients() -> None:
    """The client process's collection, at a moment nothing is measured (a step delivered to
    every client of the process, or a command done): see ``freeze_clients``."""
    import gc

    gc.collect()


async def pipe_recv(conn, timeout: float):
    """The next message from a client process's pipe, waited for on the event loop (a
    reader on the pipe's descriptor): polling it every 0.5 ms took a share of the two
    cores from the server and the clients during every measured step. ``TimeoutError``
    after ``timeout`` seconds."""
    import asyncio

    if not conn.poll():
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await asyncio.wait_for(readable, timeout)
        finally:
            loop.remove_reader(conn.fileno())
    return conn.recv()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_url() -> str:
    return urlunparse(urlparse(BASE_DB)._replace(path=f"/{BENCH_DB}"))


def redis_url() -> str:
    return f"redis://127.0.0.1:{REDIS_PORT}/0"


# ---- private Redis ------------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on its own port, no persistence; ``restart()`` loses everything
    (what a Redis restart without persistence does)."""

    def __init__(self, port: int = REDIS_PORT):
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--maxclients", "20000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def restart(self, down_seconds: float = 1.0) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        time.sleep(down_seconds)
        self.start()


# ---- server processes -------------------------------------------------------------


def server_env(*, embedded: bool, pool: bool = False) -> dict:
    """Environment of a benchmark server. ``pool``: Django's psycopg connection pool
    (``DATABASE_URL=...?pool=true``, needs psycopg-pool), so that many requests at once
    share a few PostgreSQL connections instead of one each."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.base",
        "ENSEMBLE_VAR_DIR": str(VAR),
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "CHANNEL_LAYER_PREFIX": "bench",
        "CONTEXT_KEY_PREFIX": "bench:ctx",
    }
    if embedded:
        env["DATABASE_URL"] = f"sqlite:///{VAR / 'bench.sqlite3'}"
        env.pop("REDIS_URL", None)
    else:
        env["DATABASE_URL"] = pg_url() + ("?pool=true" if pool else "")
        env["REDIS_URL"] = redis_url()
    return env


_migrated: set[str] = set()


def ensure_database(env: dict) -> None:
    """Create ``ensemble_bench`` (PostgreSQL) if missing and migrate (once per run)."""
    url = env["DATABASE_URL"]
    if url in _migrated:
        return
    VAR.mkdir(parents=True, exist_ok=True)
    if url.startswith("postgres"):
        import psycopg

        admin = urlunparse(urlparse(url)._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
                conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    _migrated.add(url)


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:  # noqa: BLE001 - still starting
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Server:
    """A server subprocess (``self.proc``) answering on ``self.port``; ``stop()`` ends it."""

    proc: subprocess.Popen
    log = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()


class Daphne(Server):
    def __init__(self, env: dict, app: str = "asgi:application", port: int | None = None, health: str = "/healthz"):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(VAR / f"daphne-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            # a listen backlog of 1024 (Twisted's default is 50): a room connecting at once
            [str(Path(PY).with_name("daphne")), "-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog=1024", app],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_http(self.url + health, self.proc)
        except BaseException:  # a server that did not come up is not left running (it holds database connections)
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.log.close()
            raise


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int, *, split: bool = False) -> float | tuple[float, float]:
    """User + system CPU time of process ``pid`` (all its threads) so far; with
    ``split``, (user, system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = (int(fields[i]) / os.sysconf("SC_CLK_TCK") for i in (11, 12))
    return (user, system) if split else user + system


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL server process so far (0 where /proc does not tell)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def prepare_group(env: dict, n: int, *, started: bool = True) -> dict:
    """A fresh group session with ``n`` participants (runs + memberships), in the
    database of ``env``, started (or, ``started=False``, waiting for the experimenter's
    start); returns ids, cookies and the experimenter login (bench/prepare.py)."""
    argv = [PY, str(ROOT / "bench" / "prepare.py"), str(n), *([] if started else ["--waiting"])]
    out = subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- statistics ---------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
        "mean": round(statistics.fmean(ms), 2),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


PY_SPY_EXTRA = os.environ.get("BENCH_PY_SPY_ARGS", "").split()  # e.g. "--gil": only the thread holding the GIL
PY_SPY_RATE = os.environ.get("BENCH_PY_SPY_RATE", "200")  # samples per second


class py_spy:  # noqa: N801 - used like a function
    """``py-spy record`` of ``pid`` into ``prefix.txt`` (collapsed stacks) until ``stop()``."""

    def __init__(self, pid: int, prefix: str):
        binary = Path(PY).with_name("py-spy")
        self.path = f"{prefix}.txt"
        self.proc = subprocess.Popen(
            [str(binary), "record", "-p", str(pid), "-o", self.path, "--format", "raw", "-r", PY_SPY_RATE,
             "--nonblocking", *PY_SPY_EXTRA],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)

    def stop(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
