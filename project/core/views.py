"""Site-wide views: health check and the home page."""

from __future__ import annotations

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

logger = logging.getLogger("project.healthz")


def _timed(fn):
    """Run one check. The public answer names only the exception's type: its text can hold
    host names, user names or paths, so it goes to the server log instead."""
    started = time.perf_counter()
    try:
        fn()
        ok, error = True, None
    except Exception as exc:  # a health check reports, it does not raise
        ok, error = False, type(exc).__name__
        logger.warning("health check %s failed: %s: %s", fn.__name__, type(exc).__name__, exc)
    result = {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 2)}
    if error:
        result["error"] = error
    return result


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_channel_layer():
    layer = get_channel_layer()

    async def roundtrip():
        channel = await layer.new_channel("healthz.")
        await layer.send(channel, {"type": "healthz.ping"})
        message = await layer.receive(channel)
        if message.get("type") != "healthz.ping":
            raise RuntimeError("channel layer returned a different message")

    async_to_sync(roundtrip)()


def _check_context_store():
    from groups.context import get_store

    if not get_store().ping():
        raise RuntimeError("no answer")


@never_cache
def healthz(request):
    from groups.context import get_store

    layer_backend = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    body = {
        "database": {"engine": connection.vendor, **_timed(_check_database)},
        "channel_layer": {"backend": layer_backend, **_timed(_check_channel_layer)},
        "context_store": {"backend": get_store().name, **_timed(_check_context_store)},
    }
    healthy = all(part["ok"] for part in body.values())
    body["status"] = "ok" if healthy else "degraded"
    return JsonResponse(body, status=200 if healthy else 503)


def home(request):
    return render(request, "core/home.html")
