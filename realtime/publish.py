"""Publishing group-state changes: one message per change per server process.

``publish_text(id, body)`` delivers a snapshot in its wire form (``realtime.frames``)
to every hub: with ``REDIS_URL`` one Redis ``PUBLISH`` on
``realtime.groups.state_channel()`` (every server process holds ONE subscription to
that channel, its ``Hub``); without, handed to the in-process hub(s) directly.

``broadcast_state(id)`` publishes a fresh read of the snapshot (the registered
``ports.group().read_body``), coalescing the reads of changes that commit together.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from .broadcast import hubs
from .groups import state_channel, uses_redis
from .ports import group

logger = logging.getLogger(__name__)

_redis_lock = threading.Lock()
_redis_client = None


def _redis():
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        return _redis_client


def publish_text(group_session_id: int, body: str) -> None:
    """Deliver one snapshot in its wire form (``frames.encode``) to every hub (every
    server process)."""
    message = f"{int(group_session_id)}\n{body}"
    if uses_redis():
        _redis().publish(state_channel(), message)
        return
    for hub in hubs():
        if not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.deliver_soon, message)


def broadcast_state(group_session_id: int, *, within: float = 0.0) -> None:
    """Send the current snapshot of ``group_session_id`` to all its sockets (one
    message per process). Never raises.

    ``within`` > 0 (answers use ``GROUP_ANSWER_FLUSH_SECONDS``): the process's publisher
    thread reads it that much later, so the changes of a burst (a whole group answering
    within a second) are sent as a few snapshots, not one per answer, and the committing
    request does not read it at all.

    The committing thread reads and publishes the snapshot itself (on its open database
    connection) unless a snapshot of the same group session is being read right now:
    then it only marks it, and once that read is done the process's publisher thread
    reads it once more. So changes that commit together (500 answers at once) cost a
    few snapshot reads, not one each, and every change is covered by a read that
    started after it committed. A broadcast that fails is logged (clients still
    converge: every later change, every reconnect and every hub resync after a Redis
    restart carries the whole state)."""
    if within > 0:
        _publisher.request(int(group_session_id), delay=within)
        return
    if _publish_coalesced(int(group_session_id)):
        _publisher.request(int(group_session_id))


def publish_now(group_session_id: int) -> None:
    """Read and publish the snapshot of ``group_session_id`` in this thread."""
    publish_text(group_session_id, group().read_body(group_session_id))


_reading: set[int] = set()  # group sessions whose snapshot is being read in this process
_stale: set[int] = set()  # ... and changed since that read started
_reading_lock = threading.Lock()


def _publish_coalesced(group_session_id: int) -> bool:
    """Publish unless a read is under way (then mark it stale). True when another read
    is needed (a change committed during this one)."""
    with _reading_lock:
        if group_session_id in _reading:
            _stale.add(group_session_id)
            return False
        _reading.add(group_session_id)
    try:
        publish_now(group_session_id)
    except Exception:
        logger.exception("broadcast of group session %s failed", group_session_id)
    finally:
        with _reading_lock:
            _reading.discard(group_session_id)
            again = group_session_id in _stale
            _stale.discard(group_session_id)
    return again


class _Publisher:
    """One daemon thread per process for the coalesced re-reads."""

    def __init__(self):
        self._wanted: dict[int, float] = {}  # group session -> when to read it (monotonic)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def request(self, group_session_id: int, delay: float = 0.0) -> None:
        """Read and publish ``group_session_id`` within ``delay`` seconds (sooner if it
        is already wanted sooner)."""
        due = time.monotonic() + delay
        with self._cond:
            self._wanted[group_session_id] = min(due, self._wanted.get(group_session_id, due))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="group-state-publisher", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _next(self, connection) -> int:
        """Wait for the next group session that is due (holding no database connection
        while idle) and take it off the list."""
        with self._cond:
            while True:
                if not self._wanted:
                    connection.close()  # idle: hold no database connection
                    self._cond.wait()
                    continue
                group_session_id, due = min(self._wanted.items(), key=lambda item: item[1])
                wait = due - time.monotonic()
                if wait <= 0:
                    del self._wanted[group_session_id]
                    return group_session_id
                self._cond.wait(wait)

    def _run(self) -> None:
        from django.db import connection

        while True:
            group_session_id = self._next(connection)
            try:
                if _publish_coalesced(group_session_id):
                    self.request(group_session_id)
            except Exception:
                logger.exception("broadcast of group session %s failed", group_session_id)
                connection.close()


_publisher = _Publisher()
