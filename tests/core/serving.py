"""A real server process for tests, started as `make run` starts it
(`python -m project.serve ... asgi:application`), on a database of its own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def live_server(tmp: Path, **env_extra: str):
    """Yield ``{"port", "pid", "log"}`` of a migrated server with ``env_extra`` set;
    stopped at the end."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "ENSEMBLE_VAR_DIR": str(tmp / "var"),
        **env_extra,
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "project.serve", "-b", "127.0.0.1", "-p", str(port), "asgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.2)
        yield {"port": port, "pid": proc.pid, "log": log}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
