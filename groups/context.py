"""The shared group context store (SPEC section 5).

Redis when ``REDIS_URL`` is set (atomic updates across processes), in-process
otherwise. ``get_store()`` returns the configured one.

A patch is a shallow merge: each key in the patch replaces that key of the
context, and a ``None`` value deletes the key. The database keeps a checkpoint
(``GroupSession.context``); ``restore(id, checkpoint)`` puts it back when the store
lost the key (a Redis restart) without overwriting a context that is there.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache

from django.conf import settings


def _copy(value):
    return json.loads(json.dumps(value))


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
            return _copy(value) if value is not None else None

    def set(self, group_session_id: int, context: dict) -> None:
        with self._lock:
            self._data[group_session_id] = _copy(context)

    def patch(self, group_session_id: int, patch: dict) -> dict:
        with self._lock:
            current = self._data.setdefault(group_session_id, {})
            for key, value in _copy(patch).items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            return _copy(current)

    def restore(self, group_session_id: int, checkpoint: dict) -> dict:
        with self._lock:
            current = self._data.setdefault(group_session_id, _copy(checkpoint or {}))
            return _copy(current)

    def delete(self, group_session_id: int) -> None:
        with self._lock:
            self._data.pop(group_session_id, None)


_RESTORE = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], '__exists', '1')
  for i = 1, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return redis.call('HGETALL', KEYS[1])
"""


class RedisContextStore:
    """Context as one Redis hash per group session: field -> JSON value, so a
    patch is one atomic transaction over the changed keys. A ``__exists`` field
    tells an empty context from a lost one."""

    name = "redis"

    def __init__(self, url: str, prefix: str, ttl_seconds: int):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._restore = self._redis.register_script(_RESTORE)

    def key(self, group_session_id: int) -> str:
        return f"{self._prefix}:{group_session_id}"

    @staticmethod
    def _decode(raw) -> dict:
        if isinstance(raw, list):  # HGETALL through a script: flat list
            raw = dict(zip(raw[::2], raw[1::2], strict=True))
        return {k.decode(): json.loads(v) for k, v in raw.items() if k != b"__exists"}

    def ping(self) -> bool:
        return bool(self._redis.ping())

    def get(self, group_session_id: int) -> dict | None:
        raw = self._redis.hgetall(self.key(group_session_id))
        return self._decode(raw) if raw else None

    def set(self, group_session_id: int, context: dict) -> None:
        key = self.key(group_session_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"__exists": "1", **{k: json.dumps(v) for k, v in context.items()}})
        pipe.expire(key, self._ttl)
        pipe.execute()

    def patch(self, group_session_id: int, patch: dict) -> dict:
        key = self.key(group_session_id)
        updates = {k: json.dumps(v) for k, v in patch.items() if v is not None}
        deletions = [k for k, v in patch.items() if v is None]
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"__exists": "1", **updates})
        if deletions:
            pipe.hdel(key, *deletions)
        pipe.expire(key, self._ttl)
        pipe.hgetall(key)
        return self._decode(pipe.execute()[-1])

    def restore(self, group_session_id: int, checkpoint: dict) -> dict:
        args = []
        for k, v in (checkpoint or {}).items():
            args += [k, json.dumps(v)]
        raw = self._restore(keys=[self.key(group_session_id)], args=args)
        self._redis.expire(self.key(group_session_id), self._ttl)
        return self._decode(raw)

    def delete(self, group_session_id: int) -> None:
        self._redis.delete(self.key(group_session_id))


@lru_cache(maxsize=1)
def get_store():
    if settings.CONTEXT_STORE == "redis":
        ttl = (settings.GROUP_SESSION_HOURS + 24) * 3600
        return RedisContextStore(settings.REDIS_URL, settings.CONTEXT_KEY_PREFIX, ttl)
    return MemoryContextStore()
