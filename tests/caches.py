"""Emptying the cache in a test without touching anybody else's keys.

``cache.clear()`` on Django's Redis cache is FLUSHDB: it wipes the whole Redis database,
including the keys of other test processes running at the same time (each has its own
key prefix, ``project/settings/test.py``) and the group-context copies of this one. This
deletes only the keys under this process's cache prefix."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def clear_own_cache() -> None:
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        cache.clear()
        return
    client = cache._cache.get_client(write=True)
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
