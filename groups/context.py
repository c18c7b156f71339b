"""The shared group context (SPEC section 5): what it may hold, how it changes, and
its copy in the context store.

The record is the database: ``GroupSession.context``, changed only under the group
session's lock, in the transaction of the change that wrote it (a hook's writes, an
experimenter's ``set_context``), so a context write is exactly as durable as the answer
or step change that made it, and a refused or rolled-back change leaves nothing.

The context store (Redis when ``REDIS_URL`` is set, in-process otherwise) holds a copy
for every process: :func:`sync` writes it from the database row with the row's version,
and the store keeps it only if no newer copy is there, so copies written late or out of
order never go back in time. Every snapshot syncs it, so after a Redis restart or outage
the copy is replayed from the database by the next change, console connection or hub
resync. While the store does not answer, :func:`sync` says so (the console shows it)
and nothing waits for it: hooks and answers go on against the database.

:func:`merge` is the one rule for every writer: a patch is a shallow merge (each key
replaces that key, ``None`` deletes it), and :func:`value_problem` says what the
context cannot hold (anything JSON without NaN/Infinity, no NUL, no lone surrogate, in
keys and values at any depth, at most ``GROUP_CONTEXT_MAX_DEPTH`` levels and
``GROUP_CONTEXT_MAX_BYTES`` as JSON).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from functools import lru_cache
from itertools import accumulate

from django.conf import settings

from project.core import jsonvalues

from .state import GroupError

logger = logging.getLogger(__name__)

#: After the store failed to answer, this long passes before it is tried again (a
#: Redis that times out must not hold up every snapshot of the outage).
RETRY_SECONDS = 1.0


# ---- what the context can hold ----------------------------------------------------


def _show(text: str) -> str:
    """A key as the error names it: a JSON string (NUL and surrogates escaped), short."""
    shown = json.dumps(text)
    return shown if len(shown) <= 60 else shown[:56] + '..."'


_TEXT_PROBLEMS = {
    "nul": "contains NUL (\\u0000), which the database cannot store",
    "surrogate": "contains a lone surrogate (not valid Unicode)",
}


def value_problem(value, where: str) -> str | None:
    """Why ``value`` (found at ``where``, e.g. ``context key "x"``) cannot be in the
    context, or None (``project.core.jsonvalues.first_fault``: any depth is refused,
    never a RecursionError)."""
    max_depth = settings.GROUP_CONTEXT_MAX_DEPTH
    fault = jsonvalues.first_fault(value, max_depth=max_depth)
    if fault is None:
        return None
    at = where + "".join(f"[{step}]" if isinstance(step, int) else f"[{_show(step)}]" for step in fault.path)
    if fault.kind == jsonvalues.TOO_DEEP:
        return f"{at}: nested deeper than {max_depth} levels (GROUP_CONTEXT_MAX_DEPTH)"
    if fault.kind == jsonvalues.NOT_FINITE:
        return f"{at}: {fault.value!r} is not a JSON number (no NaN or Infinity)"
    if fault.kind == jsonvalues.BAD_TEXT:
        return f"{at}: a string {_TEXT_PROBLEMS[fault.text]}"
    if fault.kind == jsonvalues.KEY_NOT_TEXT:
        return f"{at}: key {fault.value!r} is not a string"
    if fault.kind == jsonvalues.BAD_KEY_TEXT:
        return f"{at}: key {_show(fault.value)} {_TEXT_PROBLEMS[fault.text]}"
    return f"{at}: a {type(fault.value).__name__} is not a JSON value"


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # a string in JSON text
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _copy_of(value, where: str):
    """A copy of ``value`` through JSON, or ``GroupError`` ``bad_patch`` saying what is
    wrong where. Fast for the common case (a hook rewriting a list of thousands of
    ratings): the C encoder, a round trip and a bracket count prove most values good
    without a walk in Python; only a value that fails them is walked, which then names
    the problem (or, for a tuple, finds none)."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        copy = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        copy = text = None
    if text is not None and "\\u0000" not in text and copy == value:
        try:
            text.encode("utf-8")  # a lone surrogate does not encode
        except UnicodeEncodeError:
            pass
        else:
            brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
            if not brackets or max(accumulate(map(_STEP.__getitem__, brackets))) <= settings.GROUP_CONTEXT_MAX_DEPTH:
                return copy
    problem = value_problem(value, where)
    if problem:
        raise GroupError(f"Refused {problem}.", code="bad_patch")
    return json.loads(json.dumps(value))


def merge(context: dict, patch) -> dict:
    """``context`` with ``patch`` applied (a new dict, the patched values copies), or
    ``GroupError`` ``bad_patch`` naming the key at fault: every writer of the context
    comes through here before anything is written anywhere."""
    if not isinstance(patch, dict):
        raise GroupError("A context patch is an object with string keys.", code="bad_patch")
    merged = dict(context)
    for key, value in patch.items():
        if not isinstance(key, str):
            raise GroupError(f"Context key {key!r} is not a string.", code="bad_patch")
        if problem := jsonvalues.text_fault(key):
            raise GroupError(f"Context key {_show(key)} {_TEXT_PROBLEMS[problem]}.", code="bad_patch")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _copy_of(value, f"context key {_show(key)}")
    size, limit = len(json.dumps(merged, separators=(",", ":")).encode()), settings.GROUP_CONTEXT_MAX_BYTES
    if size > limit:
        raise GroupError(
            f"Refused: with key(s) {', '.join(_show(k) for k in list(patch)[:5])} the context would hold"
            f" {size} bytes of JSON, more than GROUP_CONTEXT_MAX_BYTES ({limit}).",
            code="bad_patch",
        )
    return merged


# ---- the copy in the context store --------------------------------------------------


class MemoryContextStore:
    name = "memory"

    def __init__(self):
        self._data: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def ping(self) -> bool:
        return True

    def get(self, group_session_id: int) -> dict | None:
        with self._lock:
            found = self._data.get(group_session_id)
        return None if found is None else json.loads(found[1])

    def version(self, group_session_id: int) -> int | None:
        with self._lock:
            found = self._data.get(group_session_id)
        return None if found is None else found[0]

    def mirror(self, group_session_id: int, context: dict, version: int) -> bool:
        text = json.dumps(context, allow_nan=False)
        with self._lock:
            found = self._data.get(group_session_id)
            if found is not None and found[0] > version:
                return False
            self._data[group_session_id] = (version, text)
            return True

    def delete(self, group_session_id: int) -> None:
        with self._lock:
            self._data.pop(group_session_id, None)


# KEYS[1] the copy; ARGV: version, context JSON, TTL seconds. Kept unless a newer one is there.
_MIRROR = """
local held = redis.call('HGET', KEYS[1], 'v')
if held and tonumber(held) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'context', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisContextStore:
    """The copy as one Redis hash per group session: ``v`` (the group session's version
    when it was written) and ``context`` (JSON), replaced in one script that refuses to
    replace a newer copy."""

    name = "redis"

    def __init__(self, url: str, prefix: str, ttl_seconds: int):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._mirror = self._redis.register_script(_MIRROR)

    def key(self, group_session_id: int) -> str:
        return f"{self._prefix}:{group_session_id}"

    def ping(self) -> bool:
        return bool(self._redis.ping())

    def get(self, group_session_id: int) -> dict | None:
        raw = self._redis.hget(self.key(group_session_id), "context")
        return None if raw is None else json.loads(raw)

    def version(self, group_session_id: int) -> int | None:
        raw = self._redis.hget(self.key(group_session_id), "v")
        return None if raw is None else int(raw)

    def mirror(self, group_session_id: int, context: dict, version: int) -> bool:
        text = json.dumps(context, allow_nan=False)
        return bool(self._mirror(keys=[self.key(group_session_id)], args=[int(version), text, self._ttl]))

    def delete(self, group_session_id: int) -> None:
        self._redis.delete(self.key(group_session_id))


@lru_cache(maxsize=1)
def get_store():
    if settings.CONTEXT_STORE == "redis":
        ttl = (settings.GROUP_SESSION_HOURS + 24) * 3600
        return RedisContextStore(settings.REDIS_URL, settings.CONTEXT_KEY_PREFIX, ttl)
    return MemoryContextStore()


class _Health:
    """Whether this process's last attempt reached the store (shared by its threads)."""

    down_since: float | None = None
    retry_at: float = 0.0


def _failed(exc: Exception) -> None:
    now = time.monotonic()
    if _Health.down_since is None:
        _Health.down_since = now
        logger.warning("context store %s does not answer (%s): the database keeps the context; the copy"
                       " is replayed when it returns", get_store().name, type(exc).__name__)  # fmt: skip
    _Health.retry_at = now + RETRY_SECONDS


def _answered() -> None:
    if _Health.down_since is not None:
        logger.warning("context store %s answers again after %.1f s: copies replayed from the database",
                       get_store().name, time.monotonic() - _Health.down_since)  # fmt: skip
    _Health.down_since = None


def sync(group_session_id: int, context: dict, version: int) -> bool:
    """Write the store's copy of a group session's context from its database row at
    ``version`` (kept only if the store holds no newer copy). Never raises: False when
    the store did not answer (or failed within the last ``RETRY_SECONDS``), which the
    console shows as the context store being down."""
    if _Health.down_since is not None and time.monotonic() < _Health.retry_at:
        return False
    try:
        get_store().mirror(group_session_id, context or {}, version)
    except Exception as exc:  # any failure of the store: the database has the context
        _failed(exc)
        return False
    _answered()
    return True


def store_answers() -> bool:
    """The context store answers a ping (at most one try per ``RETRY_SECONDS`` while it
    does not). For the console's notice, which asks between snapshots."""
    if _Health.down_since is not None and time.monotonic() < _Health.retry_at:
        return False
    try:
        ok = get_store().ping()
    except Exception as exc:  # the store is down: say so, do not raise
        _failed(exc)
        return False
    if ok:
        _answered()
    return bool(ok)
