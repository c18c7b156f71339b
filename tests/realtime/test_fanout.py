"""Issue 4 acceptance: 150 participants on one process with real Redis receive every
one of 20 advances (no loss, no doubles, in order), and the console shows all of them
acknowledged. Sockets go through the real router; states travel through Redis
(``realtime.broadcast``: one PUBLISH per change, one subscription per process)."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from groups import services
from realtime.broadcast import get_hub
from runner.models import Ticket
from tests.factories import ExperimentFactory, SessionFactory

from .conftest import communicator

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PARTICIPANTS, ADVANCES = 150, 20


def _world():
    from django.conf import settings

    staff = get_user_model().objects.create_user("fanout-boss", password="pw-123456", is_staff=True)
    experiment = ExperimentFactory(is_group=True)
    gs = services.start_group_session(experiment=experiment, experimenter=staff, size=PARTICIPANTS)
    ticket = Ticket.objects.get(pk=gs.ticket_id)
    cookie = f"{settings.RUN_COOKIE_NAME}{experiment.pk}"
    runs = []
    for _ in range(PARTICIPANTS):
        session = SessionFactory(experiment=experiment, ticket=ticket)
        pseudonym = services.attach_participant(session=session, ticket=ticket).pseudonym
        runs.append((pseudonym, {cookie: session.run_token}))
    client = Client()
    client.force_login(staff)
    login = {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}
    return gs.pk, runs, login


class Participant:
    def __init__(self, gs_id, pseudonym, cookies):
        self.pseudonym = pseudonym
        self.comm = communicator(f"/ws/group/{gs_id}/participant/", cookies)
        self.version = 0
        self.steps: list[int] = []  # the step of every newer state received, in order
        self.doubled = 0

    async def read_until_step(self, step: int, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not self.steps or self.steps[-1] < step or self.version == 0:
                message = await self.comm.receive_json_from(timeout=timeout)
                if message["type"] != "group.state":
                    continue
                await self.comm.send_json_to({"type": "ack", "version": message["version"]})
                if message["version"] < self.version:
                    continue
                if message["version"] == self.version:
                    continue  # a resend of an unacknowledged state: the client ignores it
                if self.steps and message["step"] == self.steps[-1] and message["phase"] == "running":
                    self.doubled += 1 if message["step"] != 0 else 0
                self.version = message["version"]
                if message["phase"] == "running":
                    self.steps.append(message["step"])


async def console_where(boss, predicate, timeout=20):
    async with asyncio.timeout(timeout):
        while True:
            message = await boss.receive_json_from(timeout=timeout)
            if message["type"] == "group.state" and predicate(message):
                return message


async def test_150_participants_receive_every_advance_and_are_shown_acknowledged(call):
    gs_id, runs, login = await call(_world)
    boss = communicator(f"/ws/group/{gs_id}/experimenter/", login)
    assert (await boss.connect())[0]
    participants = [Participant(gs_id, pid, cookies) for pid, cookies in runs]
    try:
        connected = await asyncio.gather(*(p.comm.connect(timeout=20) for p in participants))
        assert all(ok for ok, _ in connected)
        await console_where(boss, lambda s: all(p["connected"] for p in s["participants"]))

        await boss.send_json_to({"type": "start"})
        await asyncio.gather(*(p.read_until_step(0) for p in participants))
        for step in range(ADVANCES):
            await boss.send_json_to({"type": "advance", "step": step})
            await asyncio.gather(*(p.read_until_step(step + 1) for p in participants))

        for p in participants:
            assert p.steps == list(range(ADVANCES + 1)), p.pseudonym  # none lost, doubled or out of order
            assert p.doubled == 0
        final = await console_where(
            boss,
            lambda s: (
                s["step"] == ADVANCES
                and all(not p["behind"] and p["acked_version"] >= s["participant_version"] for p in s["participants"])
            ),
        )
        assert len(final["participants"]) == PARTICIPANTS
        assert all(p["connected"] for p in final["participants"])
    finally:
        await asyncio.gather(*(p.comm.disconnect() for p in participants), return_exceptions=True)
        await boss.disconnect()
        await get_hub().drain()  # the disconnections are written before the database goes
        await call(connections.close_all)
