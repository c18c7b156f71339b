import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import free_port
from project.serve import redact_path

ROOT = Path(__file__).resolve().parents[2]


def test_redact_path_drops_queries_and_tokens():
    assert redact_path("/run/3/start/?tc=abc&PROLIFIC_PID=p1") == "/run/3/start/?[redacted]"
    assert redact_path("/run/3/verify/tok.en:123/") == "/run/3/verify/[redacted]/"
    assert redact_path("/healthz") == "/healthz"
    assert redact_path(b"/x") == "[unreadable path]"


def test_server_access_log_holds_no_ticket_or_prolific_id(tmp_path):
    """A real server started the way `make run` starts it logs the request
    without its credentials."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENSEMBLE_VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "project.serve", "-b", "127.0.0.1", "-p", str(port), "asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        secret, pid = "TICKETSECRET123", "PROLIFICPID456"
        for url in (f"/run/1/start/?tc={secret}&PROLIFIC_PID={pid}", f"/run/1/verify/{secret}/"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=5)
            except urllib.error.HTTPError:
                pass
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    text = log.read_text()
    assert "/run/1/start/?[redacted]" in text
    assert secret not in text and pid not in text
