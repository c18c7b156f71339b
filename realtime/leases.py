"""Leases of server processes: who is alive to hold the participant sockets it counted.

Every hub (one per server process) has a lease id (``new_process_id``) and renews its
lease every ``GROUP_PRESENCE_LEASE_SECONDS / 3``: with ``REDIS_URL`` a Redis key with a
time to live of ``GROUP_PRESENCE_LEASE_SECONDS`` (so a killed process's lease runs out
by itself), without Redis an entry in this process's memory (one process: any other
lease id in the database is from a process that is gone).

The connections each process counted are kept per lease id in the database
(``groups.presence``). A process whose lease is missing on ``Sweeper.dead`` checks at
least ``LEASE_SECONDS / 2`` apart is dead, and its connections are taken off. A live
process renews more often than that, so a Redis restart (every lease gone at once)
kills nobody. A process that finds its own lease gone (it stalled longer than the
lease, or Redis restarted) cannot know whether another process has already taken its
connections off, so it takes a new lease id and counts its sockets again under it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from django.conf import settings

logger = logging.getLogger(__name__)

LEASE_SECONDS = float(getattr(settings, "GROUP_PRESENCE_LEASE_SECONDS", 5.0))


def new_process_id() -> str:
    return secrets.token_hex(8)


def _prefix() -> str:
    config = settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG", {})
    return f"{config.get('prefix', 'ensemble')}:presence-lease:"


class LocalLeases:
    """Leases in this process's memory (no Redis: one server process)."""

    _expiry: dict[str, float] = {}  # lease id -> monotonic expiry, shared by the hubs of a process

    def __init__(self, seconds: float = LEASE_SECONDS):
        self.seconds = seconds

    async def renew(self, process: str) -> bool:
        """Hold ``process``'s lease for ``seconds`` more; True if it was still held."""
        now = time.monotonic()
        held = self._expiry.get(process, 0.0) > now
        self._expiry[process] = now + self.seconds
        return held

    async def alive(self, processes: list[str]) -> set[str]:
        now = time.monotonic()
        return {p for p in processes if self._expiry.get(p, 0.0) > now}

    async def close(self) -> None:
        pass


class RedisLeases:
    """Leases as Redis keys with a time to live, shared by every server process."""

    def __init__(self, url: str, seconds: float = LEASE_SECONDS):
        import redis.asyncio as aioredis

        self.seconds = seconds
        self.prefix = _prefix()
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    async def renew(self, process: str) -> bool:
        previous = await self.client.set(self.prefix + process, b"1", px=int(self.seconds * 1000), get=True)
        return previous is not None

    async def alive(self, processes: list[str]) -> set[str]:
        found = await self.client.mget([self.prefix + p for p in processes])
        return {p for p, value in zip(processes, found, strict=True) if value is not None}

    async def close(self) -> None:
        await self.client.aclose()


def leases():
    url = getattr(settings, "REDIS_URL", "")
    return RedisLeases(url) if url else LocalLeases()


class Sweeper:
    """Decides which lease ids are dead: missing from the lease store on two checks at
    least ``grace`` seconds apart (by default half a lease)."""

    def __init__(self, grace: float = LEASE_SECONDS / 2):
        self.grace = grace
        self.missing_since: dict[str, float] = {}

    def dead(self, candidates: set[str], alive: set[str], now: float) -> set[str]:
        """Of ``candidates`` (lease ids with connections counted), those to sweep now;
        ``alive`` are the candidates whose lease is held, ``now`` a monotonic time."""
        for process in list(self.missing_since):
            if process not in candidates or process in alive:
                del self.missing_since[process]
        dead = set()
        for process in candidates - alive:
            since = self.missing_since.setdefault(process, now)
            if now - since >= self.grace:
                dead.add(process)
        return dead

    def swept(self, processes: set[str]) -> None:
        for process in processes:
            self.missing_since.pop(process, None)


async def keep_lease(hub) -> None:
    """Renew ``hub.process``'s lease every ``LEASE_SECONDS / 4``, forever (the hub's task);
    a lease found lost makes the hub count its sockets again under a new id
    (``Hub.recount``). With Redis each round also sweeps dead processes' connections;
    without, the first round sweeps what earlier processes left (one process at a time)."""
    store = leases()
    shared = isinstance(store, RedisLeases)
    sweeper = Sweeper() if shared else Sweeper(grace=0.0)
    first, failing = True, False
    try:
        while True:
            try:
                if not await store.renew(hub.process) and not first:
                    logger.warning("presence lease of this server process was lost; counting its sockets again")
                    hub.recount()
                    await store.renew(hub.process)
                if first or shared:
                    await _sweep(hub, store, sweeper)
                first, failing = False, False
            except Exception as exc:  # Redis or the database away: try again next round
                if not failing:
                    logger.warning("presence lease not renewed (%s); retrying", exc)
                failing = True
            await asyncio.sleep(LEASE_SECONDS / 4)
    finally:
        await store.close()


async def _sweep(hub, store, sweeper: Sweeper) -> None:
    from channels.db import database_sync_to_async

    from .ports import group

    counting_processes, sweep_processes = group().counting_processes, group().sweep_processes
    candidates = await database_sync_to_async(counting_processes)(besides=[hub.process])
    alive = await store.alive(sorted(candidates)) if candidates else set()
    dead = sweeper.dead(candidates, alive, time.monotonic())
    if dead:
        swept = await database_sync_to_async(sweep_processes)(dead=dead)
        sweeper.swept(dead)
        logger.info("connections of %d ended server process(es) taken off %d group session(s)", len(dead), len(swept))
