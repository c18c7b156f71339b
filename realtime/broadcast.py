"""The per-process hub: the group sockets of one server process, fed with group
states serialised once per receiver class (``realtime.frames``), which
``realtime.publish`` delivers (one Redis PUBLISH per change, or in-process).

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
(the registered ``ports.group().record_presence``), which makes one console-only
change: the console view is coalesced instead of one database write and one broadcast per ack.
Connections are written as the number of sockets this process holds, under the hub's
lease id (``realtime.leases``), so that another process can take them off if this one
dies.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.conf import settings

from .frames import CONSOLE, Frames, decode_console
from .groups import close_subscription, state_channel, uses_redis
from .leases import keep_lease, new_process_id
from .ports import group

logger = logging.getLogger(__name__)

FLUSH_SECONDS = getattr(settings, "GROUP_PRESENCE_FLUSH_SECONDS", 0.15)
ANSWER_FLUSH_SECONDS = getattr(settings, "GROUP_ANSWER_FLUSH_SECONDS", 0.1)
WAIT_SECONDS = 2.0  # how long a connecting socket waits for the broadcast of its own connection
TICK_SECONDS = 0.25  # the hub's timer: ack resends and presence timeouts of its sockets


# ---- the per-process hub -----------------------------------------------------------

_hubs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class _Batch:
    """What a process has to write for one group session (``Hub.note``), within ``FLUSH_SECONDS``."""

    acks: dict[str, int] = field(default_factory=dict)  # pseudonym -> highest version acknowledged
    deltas: dict[str, int] = field(default_factory=dict)  # pseudonym -> connections opened minus closed
    ready: dict[str, int] = field(default_factory=dict)  # pseudonym -> the step of its waiting screen
    futures: list = field(default_factory=list)  # each ``note``'s: the version that recorded it


def hubs() -> list[Hub]:
    """Every hub of this process (one per event loop)."""
    return list(_hubs.values())


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
        self._pending: dict[int, _Batch] = {}  # group session -> what ``note`` collected for it
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
        body = await database_sync_to_async(group().read_body)(group_session_id)
        frames = Frames.decode(group_session_id, body)
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
        """``message`` is ``"<group session id>\n<Frames.encode(snapshot)>"`` or ``"<group session
        id>\n<console_body(...)>"`` (``publish_text``)."""
        head, _, body = message.partition("\n")
        if int(head) not in self.sockets:
            return
        if body.startswith(CONSOLE):
            await self.complete(int(head), *decode_console(body))
        else:
            await self.deliver(Frames.decode(int(head), body))

    async def complete(self, group_session_id: int, version: int, experimenter: str) -> None:
        """The experimenter's view of snapshot ``version``, published after the snapshot (its
        participants' part went out first): kept in it and sent to the consoles, unless a
        newer snapshot came in between (it has, or will have, its own)."""
        frames = self.frames.get(group_session_id)
        if frames is None or frames.version != version or not frames.console_pending:
            return
        frames.experimenter = experimenter
        await self._push_all(frames)  # (a participant's socket has this version: it sends nothing)

    async def deliver(self, frames: Frames) -> None:
        """Write ``frames`` to every local socket of its group session, in one pass:
        daphne's send only queues the frame, so no socket waits for another."""
        if self._remember(frames):
            await self._push_all(frames)

    async def _push_all(self, frames: Frames) -> None:
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
                body = await database_sync_to_async(group().read_body)(gs_id)
                await self.deliver(Frames.decode(gs_id, body))
            except Exception:
                logger.exception("resync of group session %s failed", gs_id)

    # -- acknowledgements and presence, coalesced
    def note(
        self, group_session_id: int, pseudonym: str, *, ack: int = 0, connections: int = 0, ready: int | None = None
    ) -> asyncio.Future:
        """Record an ack (highest version), a connection change (+1/-1) or a page on the
        waiting screen of step ``ready``; written with the others of this group session
        within ``FLUSH_SECONDS`` (the pages on the waiting screen after the connections they
        came on). The future gets the version that recorded the acks and connections (None
        if nothing changed or it failed)."""
        batch = self._pending.setdefault(group_session_id, _Batch())
        if ready is not None:
            batch.ready[pseudonym] = ready
        if ack:
            batch.acks[pseudonym] = max(batch.acks.get(pseudonym, 0), ack)
        if connections:
            batch.deltas[pseudonym] = batch.deltas.get(pseudonym, 0) + connections
            counts = self.held.setdefault(group_session_id, {})
            counts[pseudonym] = counts.get(pseudonym, 0) + connections
            if counts[pseudonym] <= 0:
                del counts[pseudonym]
                if not counts:
                    del self.held[group_session_id]
        future = self.loop.create_future()
        batch.futures.append(future)
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
            deltas = self._pending.setdefault(group_session_id, _Batch()).deltas
            for pseudonym in counts:
                deltas.setdefault(pseudonym, 0)
            self._flush_soon(group_session_id)

    async def _write(self, group_session_id: int) -> bool:
        """Write the pending batch of one group session; False if it failed."""
        batch = self._pending.pop(group_session_id)
        acks, deltas, ready = batch.acks, batch.deltas, batch.ready
        retired = self._retire.pop(group_session_id, ())
        try:
            if any(deltas.values()) or retired:  # the counts this process holds now (absolute):
                counts = self.held.get(group_session_id, {})  # writes run in order (one database thread)
                version = await database_sync_to_async(group().record_presence)(
                    group_session=group_session_id, acks=acks, process=self.process,
                    held={pid: counts.get(pid, 0) for pid in deltas}, retired=retired,
                )  # fmt: skip
            else:  # acknowledgements only (the flood after every state): one UPDATE
                version = await database_sync_to_async(group().record_acks)(group_session=group_session_id, acks=acks)
            if ready:  # one change for all of them, not one locked change (and snapshot) each
                await database_sync_to_async(group().participants_ready)(group_session=group_session_id, steps=ready)
            ok = True
        except Exception:
            logger.exception("presence of group session %s not recorded", group_session_id)
            ok, version = False, None
            if ready:  # pages on the waiting screen are counted once written: again, next batch
                again = self._pending.setdefault(group_session_id, _Batch())
                again.ready = {**ready, **again.ready}
            if any(deltas.values()) or retired:  # connection counts must not drift: write them next batch
                again = self._pending.setdefault(group_session_id, _Batch())
                for pid, delta in deltas.items():
                    again.deltas[pid] = again.deltas.get(pid, 0) + delta
                if retired:
                    self._retire[group_session_id] = (*retired, *self._retire.get(group_session_id, ()))
        for future in batch.futures:
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

    async def drain(self) -> None:
        """Write pending acks and presence now (tests, shutdown)."""
        while self._flushing:
            await asyncio.gather(*list(self._flushing.values()), return_exceptions=True)
