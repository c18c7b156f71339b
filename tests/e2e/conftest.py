"""Browser-test fixtures: a real daphne server on the test database, and Chromium.

Fixtures (reusable by every e2e test, solo or group):

``live_server_factory`` (session)
    ``start(env=None) -> LiveServer``: starts ``python -m project.serve -b 127.0.0.1 -p <free port>
    asgi:application`` with ``DJANGO_SETTINGS_MODULE=project.settings.test`` on the SAME
    database as this pytest process (``DATABASE_URL`` of the test database), the same
    ``ENSEMBLE_VAR_DIR``, ``TEST_DB_SUFFIX`` (so Redis key prefixes match), secret,
    encryption and pseudonym keys, and a collected ``STATIC_ROOT``. Waits for ``/healthz``.
    Call it several times for several server processes (they share DB and Redis).
    ``env`` adds or overrides environment variables for that process.
    All servers stop at the end of the session; ``LiveServer.stop()`` stops one earlier.
``daphne_server`` (session)
    One shared ``LiveServer``; ``daphne_server.url`` is e.g. ``http://127.0.0.1:41234``.
``browser`` (module), ``page`` (function), ``new_page`` (function)
    Playwright Chromium (Debian's ``/usr/bin/chromium``, headless). ``page`` is a laptop-sized
    page in a fresh context; ``new_page(width=390, height=844)`` makes more (e.g. a phone,
    or a second participant: each call is a new context, so cookies are separate).

Tests that use the server must use the ``transactional_db`` fixture (rows are committed,
so the server process sees them) and be marked ``@pytest.mark.browser``.
Screenshots go to ``tests/e2e/artifacts/`` (git-ignored): ``ARTIFACTS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from bench.common import free_port
from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_TIMEOUT = float(os.environ.get("E2E_SERVER_START_TIMEOUT", "40"))


def _test_database_url() -> str:
    """A DATABASE_URL naming the database pytest-django created for this process."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(db.get("USER") or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{db['NAME']}"
    raise RuntimeError(f"e2e server: unsupported database engine {db['ENGINE']}")


@dataclass
class LiveServer:
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    env: dict = field(repr=False, default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _wait_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"daphne exited with {server.process.returncode}:\n{server.log()[-4000:]}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001 - still starting
            last = exc
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"daphne did not answer /healthz within {START_TIMEOUT}s ({last}):\n{server.log()[-4000:]}")


@pytest.fixture(scope="session")
def e2e_static_root(tmp_path_factory) -> Path:
    """``collectstatic`` into a temporary STATIC_ROOT, once per test session."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings.test", "STATIC_ROOT": str(root)}
    proc = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"collectstatic failed:\n{proc.stderr[-4000:]}")
    return root


@pytest.fixture(scope="session")
def live_server_factory(django_db_setup, e2e_static_root, tmp_path_factory):
    """``start(env=None) -> LiveServer``: a daphne process on the test database (see module docstring)."""
    from django.conf import settings

    servers: list[LiveServer] = []
    logs = tmp_path_factory.mktemp("daphne-logs")

    def start(env: dict | None = None) -> LiveServer:
        port = free_port()
        child_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings.test",
            "DATABASE_URL": _test_database_url(),
            "ENSEMBLE_VAR_DIR": os.environ.get("ENSEMBLE_VAR_DIR", str(settings.VAR_DIR)),
            "TEST_DB_SUFFIX": os.environ.get("TEST_DB_SUFFIX", ""),
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEY),
            "PSEUDONYM_KEY": str(settings.PSEUDONYM_KEY),
            "STATIC_ROOT": str(e2e_static_root),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
            # No group timer scheduler (issue 20) unless a test asks for one: a server that
            # lives for the whole session would fire the timers other tests fire themselves.
            "GROUP_TIMERS": "0",
            **(env or {}),
        }
        log_path = logs / f"daphne-{port}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "project.serve", "-b", "127.0.0.1", "-p", str(port), "asgi:application"],
            cwd=ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = LiveServer(
            url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path, env=child_env
        )
        servers.append(server)
        _wait_healthy(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def daphne_server(live_server_factory) -> LiveServer:
    """One daphne server shared by the session's browser tests."""
    return live_server_factory()


@pytest.fixture(scope="module")
def browser(request):
    """Headless Chromium through Playwright (Debian's binary; Playwright's download is not used).

    Module-scoped on purpose: Playwright's sync API keeps an asyncio loop in this thread
    while it runs, which would break async (pytest-asyncio) tests collected after e2e/.
    A test module may set ``CHROMIUM_EXTRA_ARGS`` (e.g. fake camera and microphone)."""
    if not os.path.exists(CHROMIUM):
        missing_service(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls tests make
    # between browser steps are still synchronous, so Django may allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    args = CHROMIUM_ARGS + list(getattr(request.module, "CHROMIUM_EXTRA_ARGS", ()))
    chromium = manager.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    try:
        yield chromium
    finally:
        chromium.close()
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser):
    """``new_page(width=1280, height=800, **context_options)``: a page in a fresh browser context."""
    contexts = []

    def make(width: int = 1280, height: int = 800, **options):
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    """A laptop-sized page (1280x800) in a fresh context."""
    return new_page()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
