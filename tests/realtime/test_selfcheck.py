"""The start-up delivery self-check (realtime.selfcheck, called from asgi.py): a lost
test broadcast stops the server with a clear message; a working layer passes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer
from django.conf import settings

from realtime.selfcheck import DeliveryCheckFailed, check_delivery, probe_pubsub

ROOT = Path(__file__).resolve().parents[2]


class DroppingLayer(InMemoryChannelLayer):
    """Accepts every group_send and delivers nothing (what a broken layer does)."""

    async def group_send(self, group, message):
        return None


class RaisingLayer(InMemoryChannelLayer):
    async def group_add(self, group, channel):
        raise ConnectionError("nobody listens")


class WrongMessageLayer(InMemoryChannelLayer):
    """Delivers something, but not the probe that was sent."""

    async def group_send(self, group, message):
        await super().group_send(group, {**message, "token": "someone-else"})


def test_working_in_memory_layer_passes():
    assert 0 <= check_delivery(InMemoryChannelLayer(), timeout=2) < 2


def test_lost_broadcast_fails_loudly():
    with pytest.raises(DeliveryCheckFailed, match=r"did not arrive within 0\.3 s"):
        check_delivery(DroppingLayer(), timeout=0.3)


def test_changed_broadcast_counts_as_lost():
    with pytest.raises(DeliveryCheckFailed, match="did not arrive"):
        check_delivery(WrongMessageLayer(), timeout=0.3)


def test_layer_errors_are_reported():
    with pytest.raises(DeliveryCheckFailed, match="cannot be used: ConnectionError: nobody listens"):
        check_delivery(RaisingLayer(), timeout=2)


@pytest.mark.redis
def test_configured_redis_layer_passes():
    assert check_delivery(timeout=5) < 5  # a fresh instance of CHANNEL_LAYERS["default"]


@pytest.mark.redis
def test_redis_pubsub_round_trip_passes():
    took = async_to_sync(probe_pubsub)(settings.REDIS_URL, channel=f"ens-selfcheck-test-{os.getpid()}", timeout=5)
    assert took < 5


def test_redis_pubsub_unreachable_fails():
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    with pytest.raises(DeliveryCheckFailed, match=f"Redis at REDIS_URL={url} cannot be used"):
        async_to_sync(probe_pubsub)(url, channel="nobody", timeout=2)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the socket is: nothing listens there


def _start_asgi(tmp_path, **extra) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENSEMBLE_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEY": ",".join(settings.FIELD_ENCRYPTION_KEY),
        **extra,
    }
    return subprocess.run([sys.executable, "-c", "import asgi"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_startup_refuses_when_redis_does_not_answer(tmp_path):
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    started = _start_asgi(tmp_path, REDIS_URL=url, DELIVERY_SELFCHECK_TIMEOUT="3")
    assert started.returncode == 4, started.stderr[-2000:]
    assert "ERROR: Delivery self-check failed" in started.stderr
    assert f"REDIS_URL={url}" in started.stderr and "Traceback" not in started.stderr


def test_startup_passes_with_the_in_process_layer(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    started = subprocess.run(
        [sys.executable, "-c", "import asgi; print(type(asgi.application).__name__)"], cwd=ROOT, text=True,
        capture_output=True, timeout=120,
        env={**env, "DJANGO_SETTINGS_MODULE": "project.settings.base", "ENSEMBLE_VAR_DIR": str(tmp_path / "var"),
             "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    assert started.stdout.strip() == "ProtocolTypeRouter"
