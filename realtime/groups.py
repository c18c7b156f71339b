"""The Redis channel of group states: the one place it is spelled; whether Redis is
used; and closing a Redis subscription (the hub's and the start-up self-check's)."""

from __future__ import annotations

from django.conf import settings


def uses_redis() -> bool:
    """Group states travel through Redis (``REDIS_URL`` set), else in-process."""
    return bool(getattr(settings, "REDIS_URL", ""))


def state_channel() -> str:
    """The Redis pub/sub channel that carries every group-state change (one message
    per change; each server process subscribes once). Shares the channel layer's
    prefix, so test runs and deployments sharing a Redis stay apart."""
    config = settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {})
    return f"{config.get('prefix', 'ensemble')}:groupstate"


async def close_subscription(pubsub, client) -> None:
    """Close a redis.asyncio pub/sub and its client, quietly if Redis is already gone."""
    try:
        await pubsub.aclose()
        await client.aclose()
    except Exception:  # noqa: BLE001 - already broken
        pass
