"""The live page's socket traffic through the real router: a step's content follows the
state that starts it (once per socket, again after a reconnect), carries starts_at's
step; onsets, locations and jsPsych errors are batched into one change that reaches the
console (its onset table and the step log)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from groups import services
from groups.models import StepLog, StepOnset
from realtime.live import Reports
from tests.runner.builders import build_lockstep_experiment, start

from .conftest import communicator
from .test_consumers import next_of, state_where

pytestmark = pytest.mark.django_db(transaction=True)


class Room:
    def __init__(self):
        self.staff = get_user_model().objects.create_user("live-boss", password="pw-123456", is_staff=True)
        self.experiment = build_lockstep_experiment(3, title="Live socket")
        self.gs = services.start_group_session(experiment=self.experiment, experimenter=self.staff, size=2)
        self.clients = [Client() for _ in range(2)]
        self.sessions = [start(c, self.experiment, self.gs.ticket) for c in self.clients]
        for client in self.clients:  # the first visit of the trial: the runs are on the group_trial
            client.get(f"/run/{self.experiment.pk}/")
        self.pseudonyms = [s.group_membership.pseudonym for s in self.sessions]
        login = Client()
        login.force_login(self.staff)
        self.staff_cookies = {"sessionid": login.cookies["sessionid"].value}

    def participant(self, index):
        cookie = {f"ensemble_run{self.experiment.pk}": self.sessions[index].run_token}
        return communicator(f"/ws/group/{self.gs.pk}/participant/", cookie)

    def experimenter(self):
        return communicator(f"/ws/group/{self.gs.pk}/experimenter/", self.staff_cookies)


@pytest.fixture
def room(transactional_db):
    return Room()


async def test_content_follows_the_state_that_starts_a_step(room):
    boss, ann = room.experimenter(), room.participant(0)
    assert (await boss.connect())[0] and (await ann.connect())[0]
    waiting = await state_where(ann, lambda s: s["phase"] == "waiting")
    assert waiting["starts_at"] is None
    await boss.send_json_to({"type": "start"})
    state = await state_where(ann, lambda s: s["phase"] == "running")
    content = await next_of(ann, "group.content")
    assert content["step"] == 0 and 'name="q-warm"' in content["html"] and content["form"] == "trial"
    assert state["starts_at"] >= state["server_ms"]
    await boss.send_json_to({"type": "advance", "step": 0})
    moved = await state_where(ann, lambda s: s["step"] == 1)
    assert (await next_of(ann, "group.content"))["step"] == 1 and moved["starts_at"] > state["starts_at"]
    await ann.disconnect()
    again = room.participant(0)  # a reconnect gets the running step's content again
    assert (await again.connect())[0]
    assert (await state_where(again, lambda s: s["step"] == 1))["starts_at"] == moved["starts_at"]
    assert (await next_of(again, "group.content"))["step"] == 1
    await again.disconnect()
    await boss.disconnect()


async def test_onsets_locations_and_errors_reach_the_console(room):
    boss, ann = room.experimenter(), room.participant(0)
    assert (await boss.connect())[0] and (await ann.connect())[0]
    await boss.send_json_to({"type": "start"})
    state = await state_where(ann, lambda s: s["phase"] == "running")
    at = state["starts_at"]
    await ann.send_json_to({"type": "onset", "step": 0, "at": at + 3, "late_ms": 0, "ready_at": at - 40})
    await ann.send_json_to({"type": "location", "form": "trial", "step": 0})
    await ann.send_json_to({"type": "client_error", "step": 0, "message": "plugin exploded"})
    await ann.send_json_to({"type": "onset", "step": 0, "at": "soon", "late_ms": 0})
    assert (await next_of(ann, "error"))["code"] == "invalid_message"
    console = await state_where(boss, lambda s: s.get("onsets"), timeout=5)
    assert console["onsets"] == [{"step": 0, "reported": 1, "spread_ms": 0, "late": []}]
    row = {p["id"]: p for p in console["participants"]}[room.pseudonyms[0]]
    assert row["form"] == "trial" and row["status"] == "answering"
    onset = await database_sync_to_async(StepOnset.objects.get)(group_session=room.gs)
    assert (onset.onset_ms, onset.starts_at, onset.ready_ms) == (at + 3, at, at - 40)
    logged = await database_sync_to_async(lambda: list(StepLog.objects.filter(action="client_error")))()
    assert logged[0].data == {"participant": room.pseudonyms[0], "message": "plugin exploded"}
    await Reports.get().drain()
    await ann.disconnect()
    await boss.disconnect()
