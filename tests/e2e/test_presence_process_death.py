"""Presence after a server process dies (issue 14, cause 6).

Two daphne processes share the database and Redis. Every participant's socket sits on
process A, the experimenter's on B. A is killed with SIGKILL (no disconnect is ever
recorded for its sockets); the participants reconnect to B and later close. Within the
bound the lease gives (``realtime/leases.py``: 1.75 leases after the kill, plus a write)
each participant counts only its socket on B, and once they close the console shows
nobody connected, not the dead process's sockets forever.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from groups import services
from groups.client import GroupController
from groups.models import Membership
from runner.models import Ticket
from tests.e2e.test_group_live import _participant_socket, _state_where
from tests.factories import ExperimentFactory, SessionFactory

PASSWORD = "pw-presence-123456"
LEASE_SECONDS = 2.0
PEOPLE = 20
BOUND = 2 * LEASE_SECONDS + 2.0  # 1.75 leases at worst, and room for a loaded machine


def _connected(state: dict) -> int:
    return sum(p["connected"] for p in state["participants"])


@pytest.mark.postgres
@pytest.mark.redis
def test_console_forgets_the_sockets_of_a_killed_process(live_server_factory, transactional_db):
    env = {"GROUP_PRESENCE_LEASE_SECONDS": str(LEASE_SECONDS)}
    server_a, server_b = live_server_factory(env=env), live_server_factory(env=env)
    get_user_model().objects.create_user("ctl", password=PASSWORD, is_staff=True)
    experiment = ExperimentFactory(is_group=True)
    gs = services.start_group_session(experiment=experiment, size=PEOPLE)
    ticket = Ticket.objects.get(pk=gs.ticket_id)
    sessions = [SessionFactory(experiment=experiment, ticket=ticket) for _ in range(PEOPLE)]
    for session in sessions:
        services.attach_participant(session=session, ticket=ticket)

    async def connect_all(server):
        sockets = [await _participant_socket(server, gs, s) for s in sessions]
        for ws in sockets:
            await _state_where(ws, lambda s: s["type"] == "group.state")
        return sockets

    def counts() -> list[int]:
        try:
            return list(Membership.objects.filter(group_session=gs).values_list("connections", flat=True))
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()  # a worker thread's own connection

    async def until_counts(expected: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while await asyncio.to_thread(counts) != expected:
            assert time.monotonic() < deadline, f"connection counts {await asyncio.to_thread(counts)}"
            await asyncio.sleep(0.05)

    async def keep_alive(sockets) -> None:
        while True:
            for ws in sockets:
                await ws.send(json.dumps({"type": "ping", "t": int(time.time() * 1000)}))
            await asyncio.sleep(1.0)

    async def scenario() -> float:
        async with GroupController(server_b.url, username="ctl", password=PASSWORD,
                                   experimenter_code=gs.experimenter_code) as ctl:  # fmt: skip
            on_a = await connect_all(server_a)
            await ctl.wait_for(lambda s: _connected(s) == PEOPLE, timeout=15)
            server_a.process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.to_thread(server_a.process.wait, 10)
            on_b = await connect_all(server_b)  # the participants' pages reconnect elsewhere
            pinging = asyncio.create_task(keep_alive(on_b))  # as pages do: B never times them out
            await until_counts([1] * PEOPLE, timeout=BOUND - (time.monotonic() - killed))  # A's share off
            swept = time.monotonic() - killed
            assert _connected(ctl.state) == PEOPLE
            pinging.cancel()
            for ws in on_b:
                await ws.close()
            for ws in on_a:
                await ws.close()  # (already dropped by the kernel)
            await ctl.wait_for(lambda s: _connected(s) == 0, timeout=5)
            return swept

    try:
        elapsed = asyncio.run(scenario())
    finally:
        server_b.stop()
    print(f"counts right {elapsed:.2f} s after the kill (lease {LEASE_SECONDS} s)")
    assert elapsed <= BOUND
    assert counts() == [0] * PEOPLE
