"""The shared group context store (SPEC section 5).

Redis when ``REDIS_URL`` is set (atomic updates across processes), in-process
otherwise. ``get_store()`` returns the configured one.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache

from django.conf import settings


class MemoryContextStore:
    name = "memory"

    def __init__(self):
        self._data: dict[int, dict] = {}
        self._lock = threading.Lock()

    def ping(self) -> bool:
        return True

    def get(self, group_session_id: int) -> dict | None:
        with self._lock:
            value = self._data.get(group_session_id)
            return json.loads(json.dumps(value)) if value is not None else None

    def set(self, group_session_id: int, context: dict) -> None:
        with self._lock:
            self._data[group_session_id] = json.loads(json.dumps(context))

    def patch(self, group_session_id: int, patch: dict) -> dict:
        with self._lock:
            current = self._data.setdefault(group_session_id, {})
            current.update(json.loads(json.dumps(patch)))
            return json.loads(json.dumps(current))

    def delete(self, group_session_id: int) -> None:
        with self._lock:
            self._data.pop(group_session_id, None)


class RedisContextStore:
    """Context as one Redis hash per group session: field -> JSON value, so a
    patch is one atomic HSET of the changed keys."""

    name = "redis"

    def __init__(self, url: str, prefix: str):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix

    def key(self, group_session_id: int) -> str:
        return f"{self._prefix}:{group_session_id}"

    def ping(self) -> bool:
        return bool(self._redis.ping())

    def get(self, group_session_id: int) -> dict | None:
        raw = self._redis.hgetall(self.key(group_session_id))
        if not raw:
            return None
        return {k.decode(): json.loads(v) for k, v in raw.items() if k != b"__exists"}

    def set(self, group_session_id: int, context: dict) -> None:
        key = self.key(group_session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"__exists": "1", **{k: json.dumps(v) for k, v in context.items()}})
        pipe.execute()

    def patch(self, group_session_id: int, patch: dict) -> dict:
        key = self.key(group_session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"__exists": "1", **{k: json.dumps(v) for k, v in patch.items()}})
        pipe.hgetall(key)
        _, raw = pipe.execute()
        return {k.decode(): json.loads(v) for k, v in raw.items() if k != b"__exists"}

    def delete(self, group_session_id: int) -> None:
        self._redis.delete(self.key(group_session_id))


@lru_cache(maxsize=1)
def get_store():
    if settings.CONTEXT_STORE == "redis":
        return RedisContextStore(settings.REDIS_URL, settings.CONTEXT_KEY_PREFIX)
    return MemoryContextStore()
