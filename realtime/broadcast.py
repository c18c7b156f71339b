"""Publishing group-session changes to the sockets: one message per change per
server process, serialised once per receiver class.

``broadcast_state(id)`` (services call it from ``transaction.on_commit``) builds the
whole snapshot once and publishes it as ONE message:

- with ``REDIS_URL``: one Redis ``PUBLISH`` on ``realtime.groups.state_channel()``;
  every server process holds ONE subscription to that channel (its ``Hub``);
- without: handed to the in-process hub(s) directly.

The hub of a process keeps its sockets by group session. For each message it
builds the experimenter frame (the snapshot text as published, not re-encoded)
and the participants' shared frame once, adds each participant's own ``me`` row
as a small string, and writes the pre-serialised text to every local socket in
one pass (daphne's send does not block, so the pass is concurrent in effect).
It also keeps the latest frames per group session, so a (re)connecting socket
is sent its snapshot without a database read.

If the subscription breaks (a Redis restart), the hub reconnects, forgets its
cached frames and re-sends every held group session a fresh snapshot read from
the database, so no committed change is lost; consumers drop versions they
already have.

Acknowledgements and presence changes are collected by the hub and written in
one service call per group session every ``GROUP_PRESENCE_FLUSH_SECONDS``
(``groups.services.record_presence``), which makes one console-only change: the
console view is coalesced instead of one database write and one broadcast per ack.
Connections are written as the number of sockets this process holds, under the hub's
lease id (``realtime.leases``), so that another process can take them off if this one
dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections import defaultdict

from django.conf import settings

from .groups import close_subscription, state_channel
from .leases import keep_lease, new_process_id

logger = logging.getLogger(__name__)

SNAPSHOT_EVENT = "group.snapshot"  # kept for senders that use the channel layer
FLUSH_SECONDS = getattr(settings, "GROUP_PRESENCE_FLUSH_SECONDS", 0.15)
ANSWER_FLUSH_SECONDS = getattr(settings, "GROUP_ANSWER_FLUSH_SECONDS", 0.1)
WAIT_SECONDS = 2.0  # how long a connecting socket waits for the broadcast of its own connection
TICK_SECONDS = 0.25  # the hub's timer: ack resends and presence timeouts of its sockets
_SHARED_KEYS = (
    "type", "version", "group_session", "phase", "step", "server_ms", "shared_params", "exit_loop", "run_url",
    "size", "ready", "active", "all_responded", "timer", "lobby",
)  # fmt: skip


# one encoder, not one per call; never NaN or Infinity (browsers cannot parse them): ValueError
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_string = json.encoder.encode_basestring_ascii  # a JSON string literal (C), as json.dumps writes it


def _me_row(pseudonym: str, status: str, responded_step: int | None) -> str:
    """``{"id":..,"status":..,"responded_step":..}`` exactly as ``_dumps`` writes it, at
    a fraction of its cost (one per participant per change)."""
    responded = "null" if responded_step is None else int(responded_step)
    return f'{{"id":{_string(pseudonym)},"status":{_string(status)},"responded_step":{responded}}}'


class Frames:
    """One snapshot, pre-serialised: ``experimenter`` text, and ``participant(id)``
    built from the shared part (encoded once) plus that participant's own row (also
    encoded once, by the process that published it).

    On the wire (``encode`` / ``decode``, what one PUBLISH carries after the group
    session's id) a snapshot is four lines, so that a hub never parses the whole
    state: ``<version> <participant_version>``, the participants' shared part (a
    JSON object without its closing brace), a JSON object ``{pseudonym: [status,
    "<that participant's me row as JSON>"]}``, and the experimenter's text. JSON
    text holds no raw newline, so the lines split unambiguously."""

    __slots__ = ("group_session", "version", "participant_version", "experimenter", "_shared", "_me")

    def __init__(self, group_session: int, version: int, participant_version: int, experimenter: str, shared: str,
                 me: dict):  # fmt: skip
        self.group_session, self.version, self.participant_version = group_session, version, participant_version
        self.experimenter, self._shared, self._me = experimenter, shared, me

    @staticmethod
    def encode(state: dict) -> str:
        shared = _dumps({key: state[key] for key in _SHARED_KEYS})[:-1]
        me = {p["id"]: [p["status"], _me_row(p["id"], p["status"], p["responded_step"])] for p in state["participants"]}
        return f"{int(state['version'])} {int(state['participant_version'])}\n{shared}\n{_dumps(me)}\n{_dumps(state)}"

    @classmethod
    def decode(cls, group_session: int, body: str) -> Frames:
        head, shared, me, experimenter = body.split("\n", 3)
        version, participant_version = head.split(" ")
        return cls(int(group_session), int(version), int(participant_version), experimenter, shared, json.loads(me))

    @classmethod
    def of(cls, state: dict) -> Frames:
        return cls.decode(state["group_session"], cls.encode(state))

    def knows(self, pseudonym: str) -> bool:
        return pseudonym in self._me

    def status_of(self, pseudonym: str) -> str:
        mine = self._me.get(pseudonym)
        return "kicked" if mine is None else mine[0]

    def participant(self, pseudonym: str) -> str:
        mine = self._me.get(pseudonym)
        if mine is None:  # removed from the group since: shown as such
            me = _me_row(pseudonym, "kicked", None)
        else:
            me = mine[1]
        return f'{self._shared},"me":{me}}}'


# ---- publishing (sync: called after commit, from any thread) ---------------------

_redis_lock = threading.Lock()
_redis_client = None


def _redis():
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        return _redis_client


def uses_redis() -> bool:
    return bool(getattr(settings, "REDIS_URL", ""))


def publish_text(group_session_id: int, body: str) -> None:
    """Deliver one snapshot in its wire form (``Frames.encode``) to every hub (every
    server process)."""
    message = f"{int(group_session_id)}\n{body}"
    if uses_redis():
        _redis().publish(state_channel(), message)
        return
    for hub in list(_hubs.values()):
        if not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.deliver_soon, message)


def snapshot_message(group_session_id: int) -> dict:
    from groups.selectors import snapshot

    return {"type": SNAPSHOT_EVENT, "state": snapshot(group_session_id)}


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
    from groups.selectors import snapshot

    publish_text(group_session_id, Frames.encode(snapshot(group_session_id)))


def publish_state(group_session, state) -> None:
    """Publish a change that has just committed, from the state it committed (what a
    fresh read would return; ``groups.selectors.snapshot_of``): no read of all N rows
    back, so an advance reaches the sockets sooner. Called by ``transaction.on_commit``
    with a copy of the locked group session row; never raises."""
    from groups.selectors import snapshot_of

    try:
        body = Frames.encode(snapshot_of(group_session, state))
        publish_text(group_session.pk, body)
    except Exception:
        logger.exception("broadcast of group session %s failed", group_session.pk)


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

    def _run(self) -> None:
        from django.db import connection

        while True:
            with self._cond:
                while True:
                    if not self._wanted:
                        connection.close()  # idle: hold no database connection
                        self._cond.wait()
                        continue
                    group_session_id, due = min(self._wanted.items(), key=lambda item: item[1])
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                del self._wanted[group_session_id]
            try:
                if _publish_coalesced(group_session_id):
                    self.request(group_session_id)
            except Exception:
                logger.exception("broadcast of group session %s failed", group_session_id)
                connection.close()


_publisher = _Publisher()


# ---- the per-process hub -----------------------------------------------------------

_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(loop)
    return hub


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.sockets: dict[int, set] = defaultdict(set)
        self.frames: dict[int, Frames] = {}
        self._loading: dict[int, asyncio.Future] = {}
        self._subscribed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._pending: dict[int, tuple[dict, dict, list]] = {}
        self._waiters: dict[int, list] = defaultdict(list)
        self._flushing: dict[int, asyncio.Task] = {}
        self._ticker: asyncio.Task | None = None
        self.resyncs = 0
        # Presence: this process's lease id, the sockets it holds (group session ->
        # pseudonym -> count) and earlier lease ids to take off (``realtime.leases``).
        self.process = new_process_id()
        self.held: dict[int, dict[str, int]] = {}
        self._retire: dict[int, tuple[str, ...]] = {}
        self._lease: asyncio.Task | None = None

    # -- membership of local sockets
    async def register(self, group_session_id: int, consumer) -> None:
        """Hold ``consumer``'s socket; returns once this process receives broadcasts."""
        self.sockets[group_session_id].add(consumer)
        if self._ticker is None:
            self._ticker = self.loop.create_task(self._tick_forever())
        if self._lease is None:
            self._lease = self.loop.create_task(keep_lease(self))
        if uses_redis():
            if self._task is None or self._task.done():
                self._subscribed = asyncio.Event()
                self._task = self.loop.create_task(self._subscribe_forever())
            await self._subscribed.wait()

    def unregister(self, group_session_id: int, consumer) -> None:
        held = self.sockets.get(group_session_id)
        if held is not None:
            held.discard(consumer)
            if not held:
                del self.sockets[group_session_id]
                self.frames.pop(group_session_id, None)

    async def current(self, group_session_id: int, pseudonym: str | None = None, *, min_version: int = 0) -> Frames:
        """The latest frames of a group session: cached, or read once from the database
        (concurrent callers share one read). Waits (briefly) for a broadcast of at least
        ``min_version``; a ``pseudonym`` the cache does not know forces a read."""
        frames = self.frames.get(group_session_id)
        if min_version and (frames is None or frames.version < min_version):
            waiter = self.loop.create_future()
            self._waiters[group_session_id].append((min_version, waiter))
            try:
                return await asyncio.wait_for(waiter, WAIT_SECONDS)
            except TimeoutError:
                pass  # the broadcast did not come (Redis trouble): read it
            finally:
                self._waiters[group_session_id] = [w for w in self._waiters[group_session_id] if w[1] is not waiter]
        elif frames is not None and (pseudonym is None or frames.knows(pseudonym)):
            return frames
        loading = self._loading.get(group_session_id)
        if loading is None:
            loading = self._loading[group_session_id] = self.loop.create_task(self._load(group_session_id))
            loading.add_done_callback(lambda _: self._loading.pop(group_session_id, None))
        return await asyncio.shield(loading)

    async def _load(self, group_session_id: int) -> Frames:
        from channels.db import database_sync_to_async

        from groups.selectors import snapshot

        frames = Frames.of(await database_sync_to_async(snapshot)(group_session_id))
        self._remember(frames)
        return self.frames.get(group_session_id, frames)

    def _remember(self, frames: Frames) -> bool:
        cached = self.frames.get(frames.group_session)
        if cached is not None and cached.version >= frames.version:
            return False
        if frames.group_session in self.sockets:
            self.frames[frames.group_session] = frames
        for min_version, waiter in self._waiters.get(frames.group_session, ()):
            if frames.version >= min_version and not waiter.done():
                waiter.set_result(frames)
        return True

    # -- delivery
    def deliver_soon(self, message: str) -> None:
        self.loop.create_task(self.deliver_text(message))

    async def deliver_text(self, message: str) -> None:
        """``message`` is ``"<group session id>\n<Frames.encode(snapshot)>"`` (``publish_text``)."""
        head, _, body = message.partition("\n")
        if int(head) in self.sockets:
            await self.deliver(Frames.decode(int(head), body))

    async def deliver(self, frames: Frames) -> None:
        """Write ``frames`` to every local socket of its group session, in one pass:
        daphne's send only queues the frame, so no socket waits for another."""
        if not self._remember(frames):
            return
        for consumer in list(self.sockets.get(frames.group_session, ())):
            try:
                await consumer.push(frames)
            except Exception:
                logger.exception("push to a group socket failed")

    async def _tick_forever(self) -> None:
        try:
            while self.sockets:
                await asyncio.sleep(TICK_SECONDS)
                now = time.monotonic()
                for held in list(self.sockets.values()):
                    for consumer in list(held):
                        try:
                            consumer.tick(now)
                        except Exception:
                            logger.exception("group socket timer failed")
        finally:
            self._ticker = None

    async def _subscribe_forever(self) -> None:
        import redis.asyncio as aioredis

        delay = 0.1
        first = True
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(state_channel())
                delay = 0.1
                self._subscribed.set()
                if not first:
                    self.loop.create_task(self._resync())
                first = False
                while True:
                    message = await pubsub.get_message(timeout=30)
                    if message is not None and message["type"] == "message":
                        await self.deliver_text(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: reconnect, then resync from the database
                logger.warning("group state subscription lost (%s); reconnecting", exc)
                self.frames.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await close_subscription(pubsub, client)

    async def _resync(self) -> None:
        """After a lost subscription: every held group session gets a fresh snapshot."""
        self.resyncs += 1
        for gs_id in list(self.sockets):
            try:
                from channels.db import database_sync_to_async

                from groups.selectors import snapshot

                await self.deliver(Frames.of(await database_sync_to_async(snapshot)(gs_id)))
            except Exception:
                logger.exception("resync of group session %s failed", gs_id)

    # -- acknowledgements and presence, coalesced
    def note(self, group_session_id: int, pseudonym: str, *, ack: int = 0, connections: int = 0) -> asyncio.Future:
        """Record an ack (highest version) or a connection change (+1/-1); written
        with the others of this group session within ``FLUSH_SECONDS``. The future
        gets the version that recorded it (None if nothing changed or it failed)."""
        acks, deltas, futures = self._pending.setdefault(group_session_id, ({}, {}, []))
        if ack:
            acks[pseudonym] = max(acks.get(pseudonym, 0), ack)
        if connections:
            deltas[pseudonym] = deltas.get(pseudonym, 0) + connections
            counts = self.held.setdefault(group_session_id, {})
            counts[pseudonym] = counts.get(pseudonym, 0) + connections
            if counts[pseudonym] <= 0:
                del counts[pseudonym]
                if not counts:
                    del self.held[group_session_id]
        future = self.loop.create_future()
        futures.append(future)
        self._flush_soon(group_session_id)
        return future

    def _flush_soon(self, group_session_id: int) -> None:
        if group_session_id not in self._flushing:
            self._flushing[group_session_id] = self.loop.create_task(self._flush_later(group_session_id))

    def recount(self) -> None:
        """This process's lease was lost (it stalled for longer than the lease, or Redis
        restarted): another process may have taken its connections off. Count every
        held socket again under a new lease id, the old id's rows taken off in the same
        change."""
        old, self.process = self.process, new_process_id()
        for group_session_id, counts in self.held.items():
            self._retire[group_session_id] = (*self._retire.get(group_session_id, ()), old)
            _, deltas, _ = self._pending.setdefault(group_session_id, ({}, {}, []))
            for pseudonym in counts:
                deltas.setdefault(pseudonym, 0)
            self._flush_soon(group_session_id)

    async def _write(self, group_session_id: int) -> bool:
        """Write the pending batch of one group session; False if it failed."""
        from channels.db import database_sync_to_async

        from groups.presence import record_acks, record_presence

        acks, deltas, futures = self._pending.pop(group_session_id)
        retired = self._retire.pop(group_session_id, ())
        try:
            if any(deltas.values()) or retired:  # the counts this process holds now (absolute):
                counts = self.held.get(group_session_id, {})  # writes run in order (one database thread)
                new = await database_sync_to_async(record_presence)(
                    group_session=group_session_id, acks=acks, process=self.process,
                    held={pid: counts.get(pid, 0) for pid in deltas}, retired=retired,
                )  # fmt: skip
                version = new.version if new is not None else None
            else:  # acknowledgements only (the flood after every state): one UPDATE
                version = await database_sync_to_async(record_acks)(group_session=group_session_id, acks=acks)
            ok = True
        except Exception:
            logger.exception("presence of group session %s not recorded", group_session_id)
            ok, version = False, None
            if any(deltas.values()) or retired:  # connection counts must not drift: write them next batch
                _, again, _ = self._pending.setdefault(group_session_id, ({}, {}, []))
                for pid, delta in deltas.items():
                    again[pid] = again.get(pid, 0) + delta
                if retired:
                    self._retire[group_session_id] = (*retired, *self._retire.get(group_session_id, ()))
        for future in futures:
            if not future.done():
                future.set_result(version)
        return ok

    async def _flush_later(self, group_session_id: int) -> None:
        try:
            await asyncio.sleep(FLUSH_SECONDS)
            while group_session_id in self._pending:
                ok = await self._write(group_session_id)
                await asyncio.sleep(FLUSH_SECONDS if ok else FLUSH_SECONDS * 4)
        finally:
            self._flushing.pop(group_session_id, None)

    async def flush_now(self, group_session_id: int) -> None:
        """Write this group session's pending acks and presence before another change
        (so that, e.g., a ``ready`` never shows before the connection it came on)."""
        if group_session_id in self._pending:
            await self._write(group_session_id)

    async def drain(self) -> None:
        """Write pending acks and presence now (tests, shutdown)."""
        while self._flushing:
            await asyncio.gather(*list(self._flushing.values()), return_exceptions=True)
