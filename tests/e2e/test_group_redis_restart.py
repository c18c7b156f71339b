"""A Redis restart in the middle of a live session loses no context and no answer.

Two daphne processes share PostgreSQL/SQLite and a PRIVATE redis-server (on a free
port, started by this test: never the shared one). The experimenter's controller sits
on one process, the three participants of the colour demo (HTTP runner + participant
sockets) on the other. Redis restarts, empty, between two answers of a step; the step
still completes with every rating in the context, the console and the participants
follow the next advance, and every answer is in the database.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
import urllib.request

import websockets
from django.conf import settings
from django.contrib.auth import get_user_model

from groups import services
from groups.client import GroupController, _Browser
from groups.models import GroupSession, Membership
from runner.definitions.loader import load_file
from runner.models import Response
from tests.e2e.test_group_live import _state_where

PASSWORD = "pw-restart-123456"
TRIAL = '[{"trial_type": "html-button-response", "response": 0, "rt": 800, "trial_index": 0}]'
_FIELD = re.compile(r'name="(csrfmiddlewaretoken|_order|_visit|_nonce|q-_group_step)"[^>]*?value="([^"]*)"')


class Participant:
    """A participant's browser without the browser: cookies, the run page, its socket."""

    def __init__(self, server, experiment_id: int):
        self.server, self.experiment_id = server, experiment_id
        self.browser = _Browser(server.url)
        self.ws = None

    def start(self, ticket_code: str) -> None:
        self.browser.get(f"/run/{self.experiment_id}/start/?{urllib.parse.urlencode({'tc': ticket_code})}")

    def post(self, answers: dict) -> str:
        """POST ``answers`` for the page on screen; returns the page the runner shows next."""
        _, html = self.browser.get(f"/run/{self.experiment_id}/")
        fields = {**dict(_FIELD.findall(html)), **answers}
        request = urllib.request.Request(
            f"{self.server.url}/run/{self.experiment_id}/", data=urllib.parse.urlencode(fields).encode()
        )
        with self.browser.opener.open(request, timeout=15) as response:  # a refusal raises HTTPError
            return response.read().decode()

    async def connect(self, gs) -> None:
        url = self.server.url.replace("http", "ws", 1) + f"/ws/group/{gs.pk}/participant/"
        headers = {"Cookie": self.browser.cookie_header(), "Origin": self.server.url}
        self.ws = await websockets.connect(url, additional_headers=headers)


def test_redis_restart_mid_step_over_two_processes(live_server_factory, private_redis, transactional_db):
    env = {"REDIS_URL": private_redis.url, "CHANNEL_LAYER_PREFIX": "restart-test"}
    console_server, participant_server = live_server_factory(env=env), live_server_factory(env=env)
    get_user_model().objects.create_user("ctl", password=PASSWORD, is_staff=True)
    demo = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
    gs = GroupSession.objects.get(pk=services.start_group_session(experiment=demo, size=3).pk)
    people = [Participant(participant_server, demo.pk) for _ in range(3)]
    ticket_code = gs.ticket.code

    def answer(i: int, step: int) -> str:
        return people[i].post({"q-warmth": str(2 + i + step), "_jspsych": TRIAL})

    async def scenario():
        for person in people:
            await asyncio.to_thread(person.start, ticket_code)
            assert "Waiting for the experimenter" in await asyncio.to_thread(person.post, {"q-agree": "I agree"})
            await person.connect(gs)
        async with GroupController(console_server.url, username="ctl", password=PASSWORD,
                                   experimenter_code=gs.experimenter_code) as ctl:  # fmt: skip
            await ctl.wait_for(lambda s: sum(p["connected"] for p in s["participants"]) == 3, timeout=15)
            await ctl.start()
            for person in people:
                await _state_where(person.ws, lambda s: s["phase"] == "running")
            for i in (0, 1):
                assert "Waiting for the others" in await asyncio.to_thread(answer, i, 0)
            await ctl.wait_for(lambda s: s["ready"] == 2, timeout=15)

            private_redis.stop()
            private_redis.start()  # same port, every key gone: context, channel-layer groups

            assert "Waiting for the others" in await asyncio.to_thread(answer, 2, 0)
            done = await ctl.wait_for(lambda s: s["all_responded"], timeout=20)
            assert sorted(r[2] for r in done["context"]["warmth"]) == [2, 3, 4]
            assert done["context"]["step_means"] == {"0": 3.0}
            await ctl.advance(0, timeout=20)
            for person in people:
                moved = await _state_where(person.ws, lambda s: s["step"] == 1, timeout=20)
                assert moved["shared_params"]["colour"] == "red"  # lavender, then warm (mean 3 <= 4): red
            for i in range(3):
                assert "Waiting for the others" in await asyncio.to_thread(answer, i, 1)
            final = await ctl.wait_for(lambda s: s["all_responded"] and s["step"] == 1, timeout=20)
            assert len(final["context"]["warmth"]) == 6 and set(final["context"]["step_means"]) == {"0", "1"}
            for person in people:
                await person.ws.close()

    try:
        asyncio.run(scenario())
    finally:  # they use the private redis-server, which goes with this test
        console_server.stop()
        participant_server.stop()
    rows = Response.objects.filter(group_session=gs, item="warmth")
    assert sorted((r.step, r.value) for r in rows) == [(s, 2 + i + s) for s in (0, 1) for i in range(3)]
    assert Membership.objects.filter(group_session=gs).count() == 3
