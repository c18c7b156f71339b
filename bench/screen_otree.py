"""oTree, the peer baseline of bench/screen.py: its own virtualenv and ``otree prodserver``.

oTree pins packages our server pins differently (6.0.15: starlette 0.14.1 and
websockets 10.1, we run starlette 1.10.0 and websockets 17.4), so it cannot go into the
shared virtualenv: ``ensure_venv()`` creates ``bench/.otree-venv`` (once) and installs
the pinned version from bench/otree-requirements.txt with pip. ``OTreeServer`` copies
bench/otree_app into a temporary directory (oTree keeps its database, ``db.sqlite3``, in
the current directory), runs ``otree prodserver 127.0.0.1:PORT`` there in its own
process group (prodserver starts a second process, the timeout worker; ``stop()`` ends
both), production mode, a random REST key, and creates the session over the REST API.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from bench import common

VENV = Path(__file__).resolve().parent / ".otree-venv"
REQUIREMENTS = Path(__file__).resolve().parent / "otree-requirements.txt"
PROJECT = Path(__file__).resolve().parent / "otree_app"


def ensure_venv() -> Path:
    """The ``otree`` command of bench/.otree-venv, created and installed if missing."""
    otree = VENV / "bin" / "otree"
    if not otree.exists():
        subprocess.run([common.PY, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                       check=True, timeout=900)  # fmt: skip
    return otree


def version() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c", "import otree; print(otree.__version__)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


class OTreeServer(common.Server):
    def __init__(self, rounds: int):
        otree = ensure_venv()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-otree-"))
        shutil.copytree(PROJECT, self.dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        (self.dir / "_static").mkdir(exist_ok=True)
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rest_key = secrets.token_urlsafe(16)
        env = {**os.environ, "PATH": f"{otree.parent}:{os.environ.get('PATH', '')}", "OTREE_PRODUCTION": "1",
               "OTREE_REST_KEY": self.rest_key, "OTREE_SECRET_KEY": secrets.token_urlsafe(24),
               "SCREEN_ROUNDS": str(rounds), "PYTHONUNBUFFERED": "1"}  # fmt: skip
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "DATABASE_URL", "OTREE_AUTH_LEVEL"):
            env.pop(name, None)
        self.log = open(self.dir / "prodserver.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(otree), "prodserver", f"127.0.0.1:{self.port}"], cwd=self.dir, env=env, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        common.wait_http(self.url + "/", self.proc, timeout=60)

    def create_session(self, n: int) -> str:
        """A session of ``n`` participants; returns the path of its session-wide link."""
        body = json.dumps({"session_config_name": "screen", "num_participants": n}).encode()
        request = urllib.request.Request(self.url + "/api/sessions", data=body, method="POST",
                                         headers={"otree-rest-key": self.rest_key})  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            made = json.loads(response.read())
        return urllib.parse.urlparse(made["session_wide_url"]).path

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # prodserver and its timeout worker (our process group)
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
