"""Leases of server processes (realtime.leases, issue 14 cause 6): renewal, expiry,
which processes are dead, and a hub that takes over from dead ones or from its own
lost lease."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from groups import presence
from groups.models import Membership, ProcessConnections
from realtime import leases
from realtime.broadcast import get_hub

from .test_consumers import state_where


def test_lease_setting_and_the_bound_it_gives():
    """A live process renews every quarter lease and is declared dead after half a lease
    missing: a dead one is swept within 1.75 leases, a live one never."""
    assert leases.LEASE_SECONDS == settings.GROUP_PRESENCE_LEASE_SECONDS > 0
    assert leases.Sweeper().grace == leases.LEASE_SECONDS / 2 > leases.LEASE_SECONDS / 4


def test_sweeper_needs_a_lease_missing_for_the_grace():
    sweeper = leases.Sweeper(grace=2.0)
    assert sweeper.dead({"a", "b"}, {"a"}, now=10.0) == set()  # b missing: noted
    assert sweeper.dead({"a", "b"}, {"a"}, now=11.9) == set()
    assert sweeper.dead({"a", "b"}, {"a"}, now=12.0) == {"b"}
    sweeper.swept({"b"})
    assert sweeper.missing_since == {}


def test_sweeper_forgives_a_lease_that_comes_back():
    """A Redis restart empties every lease at once; processes that renew within the
    grace are not dead."""
    sweeper = leases.Sweeper(grace=2.0)
    assert sweeper.dead({"a", "b"}, set(), now=0.0) == set()
    assert sweeper.dead({"a", "b"}, {"a", "b"}, now=1.0) == set()  # renewed
    assert sweeper.dead({"a", "b"}, {"b"}, now=2.5) == set()  # a missing again: counted from now
    assert sweeper.dead({"a"}, set(), now=4.4) == set()  # b has no connections left: forgotten
    assert sweeper.missing_since == {"a": 2.5}
    assert sweeper.dead({"a"}, set(), now=4.5) == {"a"}


async def test_local_leases_renew_and_expire():
    store = leases.LocalLeases(seconds=0.2)
    assert await store.renew("p1") is False  # new
    assert await store.renew("p1") is True
    assert await store.alive(["p1", "p2"]) == {"p1"}
    await asyncio.sleep(0.25)
    assert await store.alive(["p1"]) == set()
    assert await store.renew("p1") is False  # it ran out: lost


@pytest.mark.redis
async def test_redis_leases_renew_and_expire():
    store = leases.RedisLeases(settings.REDIS_URL, seconds=0.3)
    process = leases.new_process_id()
    try:
        assert await store.renew(process) is False
        assert await store.renew(process) is True
        assert 0 < await store.client.pttl(store.prefix + process) <= 300
        assert await store.alive([process, "never-renewed"]) == {process}
        await asyncio.sleep(0.4)  # a killed process renews no more
        assert await store.alive([process]) == set()
        assert await store.renew(process) is False
    finally:
        await store.client.delete(store.prefix + process)
        await store.close()


def _connections(gs) -> dict[str, int]:
    return dict(Membership.objects.filter(group_session=gs).values_list("pseudonym", "connections"))


def _owners(gs) -> set[str]:
    return set(ProcessConnections.objects.filter(group_session=gs).values_list("process", flat=True))


async def _until(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await database_sync_to_async(check)():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.05)


@pytest.mark.django_db(transaction=True)
async def test_hub_sweeps_a_dead_process_and_keeps_the_living(world):
    """A process that died left one connection of each participant counted; another
    (alive, its lease renewed) holds one of ann's. The hub's sweep takes off the dead
    one's only, and the console is told."""
    ann, bob = world.pseudonyms
    store = leases.leases()
    live = leases.new_process_id()
    await store.renew(live)
    record = database_sync_to_async(presence.record_presence)
    await record(group_session=world.gs.pk, process="dead-process", held={ann: 1, bob: 1})
    await record(group_session=world.gs.pk, process=live, held={ann: 1})
    boss = world.experimenter()
    await boss.connect()  # starts the hub, and its lease
    await state_where(boss, lambda s: True)
    await leases._sweep(get_hub(), store, leases.Sweeper(grace=0.0))
    swept = await state_where(boss, lambda s: not s["participants"][1]["connected"])
    assert [p["connected"] for p in swept["participants"]] == [True, False]
    assert await database_sync_to_async(_connections)(world.gs) == {ann: 1, bob: 0}
    assert await database_sync_to_async(_owners)(world.gs) == {live}
    await boss.disconnect()
    await store.close()


@pytest.mark.django_db(transaction=True)
async def test_hub_that_lost_its_lease_counts_its_sockets_under_a_new_id(world):
    ann = world.participant(0)
    await ann.connect()
    await state_where(ann, lambda s: True)
    hub = get_hub()
    await hub.drain()
    old = hub.process
    assert await database_sync_to_async(_owners)(world.gs) == {old}
    hub.recount()
    await hub.drain()
    assert hub.process != old
    assert await database_sync_to_async(_owners)(world.gs) == {hub.process}
    assert (await database_sync_to_async(_connections)(world.gs))[world.pseudonyms[0]] == 1
    await ann.disconnect()
    await hub.drain()
    assert await database_sync_to_async(_connections)(world.gs) == dict.fromkeys(world.pseudonyms, 0)
    assert await database_sync_to_async(_owners)(world.gs) == set()


@pytest.mark.django_db(transaction=True)
async def test_without_redis_a_starting_hub_sweeps_what_earlier_processes_left(world):
    """One process without Redis: connections counted under any other lease id are from
    a process that is gone (a restart after a crash); the first socket's hub takes them
    off at once."""
    if settings.REDIS_URL:
        pytest.skip("the in-process lease store is used without REDIS_URL")
    ann, bob = world.pseudonyms
    record = database_sync_to_async(presence.record_presence)
    await record(group_session=world.gs.pk, process="before-the-crash", held={ann: 2, bob: 1})
    boss = world.experimenter()
    await boss.connect()
    await _until(lambda: _connections(world.gs) == {ann: 0, bob: 0})
    assert await database_sync_to_async(_owners)(world.gs) == set()
    await boss.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_lease_found_gone_makes_the_hub_recount_under_a_new_id(world):
    """The hub's own task notices its lease gone (here: deleted, as a Redis restart or a
    stall past the lease would) at its next renewal and recounts; the console's counts
    stay as they were."""
    ann = world.participant(0)
    await ann.connect()
    await state_where(ann, lambda s: True)
    hub = get_hub()
    await hub.drain()
    old = hub.process
    store = leases.leases()
    if isinstance(store, leases.RedisLeases):
        await store.client.delete(store.prefix + old)
    else:
        leases.LocalLeases._expiry.pop(old)
    await store.close()
    deadline = asyncio.get_running_loop().time() + leases.LEASE_SECONDS
    while hub.process == old:
        assert asyncio.get_running_loop().time() < deadline, "the lost lease was not noticed"
        await asyncio.sleep(0.05)
    await hub.drain()
    assert await database_sync_to_async(_owners)(world.gs) == {hub.process}
    assert (await database_sync_to_async(_connections)(world.gs))[world.pseudonyms[0]] == 1
    await ann.disconnect()
