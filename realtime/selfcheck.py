"""Start-up delivery self-check: prove that a broadcast reaches its receiver.

Every live change of a group session is one ``group_send`` through the channel
layer (``realtime.broadcast``). A layer that loses messages (a misconfigured or
unreachable Redis, an exhausted connection pool) would leave consoles and
participants frozen without any error, so ``asgi.py`` calls ``check_delivery()``
before serving: a probe is sent to a fresh group holding one fresh channel and
must arrive within ``DELIVERY_SELFCHECK_TIMEOUT`` seconds. Otherwise
``DeliveryCheckFailed`` is raised with a message naming the layer and what went
wrong, and the server refuses to start. With ``REDIS_URL`` set, a Redis pub/sub
round trip on a fresh channel is checked too (server processes exchange group
states by Redis PUBLISH).

The probe uses its own layer instance (built from ``CHANNEL_LAYERS``), so the
process's shared layer is not bound to the short-lived event loop of the check,
and it never flushes anything (other processes share the Redis key space).
"""

from __future__ import annotations

import asyncio
import secrets
import time

from asgiref.sync import async_to_sync
from django.conf import settings

from .groups import close_subscription

PROBE_TYPE = "selfcheck.probe"


class DeliveryCheckFailed(RuntimeError):
    """The channel layer did not deliver the probe (or could not be reached)."""


def layer_description(layer) -> str:
    name = type(layer).__name__
    if settings.REDIS_URL and "redis" in type(layer).__module__:
        return f"{name} at REDIS_URL={_redacted(settings.REDIS_URL)}"
    return name


def _redacted(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://user:***@host:6379/0``."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    auth, at, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***{at}{host}"


async def probe(layer, *, timeout: float) -> float:
    """Send one probe through ``layer`` to a fresh group; return the seconds it took.

    Raises ``DeliveryCheckFailed`` when the probe does not arrive within ``timeout``
    seconds, arrives changed, or the layer raises (e.g. Redis refuses connections).
    """
    started = time.monotonic()
    token = secrets.token_hex(16)
    group = f"selfcheck.{token[:12]}"
    described = layer_description(layer)
    channel = None
    try:
        async with asyncio.timeout(timeout):
            channel = await layer.new_channel("selfcheck.")
            await layer.group_add(group, channel)
            await layer.group_send(group, {"type": PROBE_TYPE, "token": token})
            while True:
                message = await layer.receive(channel)
                if message.get("type") == PROBE_TYPE and message.get("token") == token:
                    return time.monotonic() - started
    except TimeoutError:
        raise DeliveryCheckFailed(
            f"Delivery self-check failed: a test broadcast through the channel layer ({described}) "
            f"did not arrive within {timeout:g} s. Live group sessions would not update. "
            "Check REDIS_URL and that Redis is running and reachable."
        ) from None
    except Exception as exc:
        raise DeliveryCheckFailed(
            f"Delivery self-check failed: the channel layer ({described}) cannot be used: "
            f"{type(exc).__name__}: {str(exc).rstrip('.')}. Check REDIS_URL and that Redis is running and reachable."
        ) from exc
    finally:
        await _clean_up(layer, group, channel)


async def _clean_up(layer, group: str, channel: str | None) -> None:
    """Leave the probe's group and close the layer's pools, quietly."""
    if channel is not None:
        try:
            async with asyncio.timeout(1):
                await layer.group_discard(group, channel)
        except Exception:  # noqa: BLE001 - best effort: the group expires anyway
            pass
    close = getattr(layer, "close_pools", None)
    if close is not None:
        try:
            await close()
        except Exception:  # noqa: BLE001 - the loop ends right after
            pass


async def probe_pubsub(url: str, *, channel: str, timeout: float) -> float:
    """Publish one probe on a fresh Redis pub/sub ``channel`` (group states travel by
    Redis PUBLISH between server processes) and wait for it on a subscription.
    Raises ``DeliveryCheckFailed``."""
    import redis.asyncio as aioredis

    started = time.monotonic()
    token = secrets.token_hex(16)
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        async with asyncio.timeout(timeout):
            await pubsub.subscribe(channel)
            await client.publish(channel, token)
            while True:
                message = await pubsub.get_message(timeout=timeout)
                if message is not None and message.get("data") == token.encode():
                    return time.monotonic() - started
    except TimeoutError:
        raise DeliveryCheckFailed(
            f"Delivery self-check failed: a test message published on Redis at REDIS_URL={_redacted(url)} "
            f"did not arrive within {timeout:g} s. Live group sessions would not update."
        ) from None
    except Exception as exc:
        raise DeliveryCheckFailed(
            f"Delivery self-check failed: Redis at REDIS_URL={_redacted(url)} cannot be used: "
            f"{type(exc).__name__}: {str(exc).rstrip('.')}. Check that Redis is running and reachable."
        ) from exc
    finally:
        await close_subscription(pubsub, client)


def _pubsub_channel() -> str:
    prefix = settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {}).get("prefix", "ensemble")
    return f"{prefix}:selfcheck:{secrets.token_hex(8)}"


def check_delivery(layer=None, *, timeout: float | None = None) -> float:
    """Run ``probe`` (and with ``REDIS_URL`` ``probe_pubsub``) synchronously, in an event
    loop of its own thread; return the seconds taken.

    ``layer`` defaults to a new instance of the configured default layer.
    Raises ``DeliveryCheckFailed``.
    """
    if layer is None:
        from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

        try:
            layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        except Exception as exc:
            raise DeliveryCheckFailed(
                f"Delivery self-check failed: the channel layer is misconfigured: {type(exc).__name__}: {exc}"
            ) from exc
    if timeout is None:
        timeout = settings.DELIVERY_SELFCHECK_TIMEOUT
    took = async_to_sync(probe)(layer, timeout=timeout)
    if settings.REDIS_URL:
        took += async_to_sync(probe_pubsub)(settings.REDIS_URL, channel=_pubsub_channel(), timeout=timeout)
    return took
