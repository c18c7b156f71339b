"""Context stores: merge semantics, atomic patches, and surviving a Redis restart
(on a private redis-server started by the test, never the shared one)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from groups.context import MemoryContextStore, RedisContextStore
from tests.conftest import missing_service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A throwaway redis-server without persistence, so a restart loses everything."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ens-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
            self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def private_redis():
    if not shutil.which("redis-server"):
        missing_service("redis-server is not installed")
    server = PrivateRedis().start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def _check_semantics(store):
    assert store.get(1) is None
    store.set(1, {})
    assert store.get(1) == {}  # an empty context exists, unlike a lost one
    assert store.patch(1, {"a": 1, "b": {"c": [1, 2]}}) == {"a": 1, "b": {"c": [1, 2]}}
    assert store.patch(1, {"a": None, "d": "x"}) == {"b": {"c": [1, 2]}, "d": "x"}
    assert store.restore(1, {"zzz": 1}) == {"b": {"c": [1, 2]}, "d": "x"}  # present: untouched
    store.delete(1)
    assert store.restore(1, {"zzz": 1}) == {"zzz": 1}
    assert store.get(1) == {"zzz": 1}


def test_memory_store_semantics():
    _check_semantics(MemoryContextStore())


def test_redis_store_semantics(private_redis):
    _check_semantics(RedisContextStore(private_redis.url, "sem", ttl_seconds=60))


def test_redis_patches_are_atomic_across_clients(private_redis):
    a = RedisContextStore(private_redis.url, "atomic", ttl_seconds=60)
    b = RedisContextStore(private_redis.url, "atomic", ttl_seconds=60)
    a.set(7, {})

    def writer(store, prefix):
        for i in range(100):
            store.patch(7, {f"{prefix}{i}": i})

    threads = [threading.Thread(target=writer, args=(s, p)) for s, p in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(a.get(7)) == 200


@pytest.mark.django_db
def test_context_survives_redis_restart(private_redis, settings, monkeypatch, gs, join, staff):
    """Checkpoint at a step change, restart Redis (all keys lost), the context comes back."""
    from groups import context, selectors, services

    store = RedisContextStore(private_redis.url, "restart", ttl_seconds=60)
    monkeypatch.setattr(context, "get_store", lambda: store)
    monkeypatch.setattr(services, "get_store", lambda: store)
    monkeypatch.setattr("groups.hooks.get_store", lambda: store)
    join()
    services.group_session_set_context(group_session=gs, patch={"scores": [3, 4]}, by=staff)
    services.group_session_start(group_session=gs, by=staff)
    private_redis.stop()
    private_redis.start()  # same port, empty
    assert store.get(gs.pk) is None
    assert selectors.snapshot(gs.pk)["context"]["scores"] == [3, 4]
    assert store.get(gs.pk)["scores"] == [3, 4]
