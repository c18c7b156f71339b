"""Suite-wide fixtures and the service gate.

Tests marked ``postgres``, ``redis`` or ``browser`` need that service. When it is
absent they skip with a reason, except under ``REQUIRE_SERVICES=1`` (CI), where
a missing service is a failure.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def missing_service(reason: str):
    """Skip for want of a service, or fail under REQUIRE_SERVICES=1 (CI).

    Every test that needs something outside Python (Redis, PostgreSQL, Chromium,
    node, redis-server) must go through this, never through a bare pytest.skip."""
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_available() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return "REDIS_URL is not set"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis at REDIS_URL does not answer: {exc}"
    return None


@pytest.fixture(autouse=True)
def _service_gate(request):
    if request.node.get_closest_marker("postgres"):
        from django.db import connection

        if connection.vendor != "postgresql":
            missing_service("this test needs PostgreSQL (set DATABASE_URL=postgres://...)")
    if request.node.get_closest_marker("redis"):
        reason = redis_available()
        if reason:
            missing_service(reason)
    if request.node.get_closest_marker("browser"):
        if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
            missing_service("Chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(autouse=True)
def _fresh_experiment_kinds():
    """Each test reads experiments' kinds anew (``runner.selectors.is_group`` keeps them
    30 s; SQLite gives a rolled-back test's ids to the next test's experiments)."""
    from runner import selectors

    selectors._kinds.clear()
    yield


FLUSH_TRIES = 5


def retried_on_deadlock(call, *, tries: int = FLUSH_TRIES, pause: float = 0.1):
    """``call()``, again (after a short pause) while PostgreSQL ends it as a deadlock's victim."""
    from django.db import OperationalError

    for attempt in range(1, tries + 1):
        try:
            return call()
        except OperationalError as exc:
            if "deadlock detected" not in str(exc) or attempt == tries:
                raise
            time.sleep(pause * attempt)


@pytest.fixture(scope="session", autouse=True)
def _flush_survives_a_deadlock():
    """A transactional test's teardown empties every table in one TRUNCATE. A thread of this
    process may still be at work then (a daphne test server answering a page's socket, the
    hub's lease, the group timers' scheduler, an export job) and read two of those tables in
    one statement; PostgreSQL ends one of the two as a deadlock's victim, sometimes the flush
    (CI: 2 of 1,279 tests in one run, each in a teardown, never in a test). The flush is
    tried again, as an application retries a deadlock's victim: the other side went on."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return retried_on_deadlock(lambda: original(self, sql_list))

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker):
    """On PostgreSQL, end connections that worker threads (Channels' database
    thread, daphne) left open on the test database, so pytest-django can drop it
    instead of leaving a ``test_ensemble_*`` database behind. Depends on
    ``django_db_setup`` so that it is torn down just before the database is."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture
def private_redis():
    """A throwaway ``redis-server`` on a free port (never the shared one) without
    persistence, so stopping and starting it is a Redis restart that loses everything."""
    if not shutil.which("redis-server"):
        missing_service("redis-server is not installed")
    from bench.common import PrivateRedis, free_port

    server = PrivateRedis(port=free_port()).start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
