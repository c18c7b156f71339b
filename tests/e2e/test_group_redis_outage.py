"""Redis down (not just restarted) in the middle of a live step, over two daphne
processes (issue 14, cause 7): answers are still accepted over HTTP, their hooks'
context writes are kept in the database, the console says the context store is down,
and when Redis is back the console and the participants carry on from complete data.

The experimenter's controller sits on one process, the three participants of the colour
demo on the other; both use a PRIVATE redis-server (never the shared one) for the
channel layer and the context store.
"""

from __future__ import annotations

import asyncio
import json
import time

from django.conf import settings
from django.contrib.auth import get_user_model

from groups import services
from groups.client import GroupController, _Browser
from groups.models import GroupSession
from runner.definitions.loader import load_file
from runner.models import Response
from tests.e2e.test_group_live import _state_where
from tests.e2e.test_group_redis_restart import TRIAL, Participant

PASSWORD = "pw-outage-123456"


def _console_browser(server, gs) -> _Browser:
    browser = _Browser(server.url)
    browser.post_form("/editor/login/?next=/editor/", {"username": "ctl", "password": PASSWORD})
    browser.post_form("/group/session/attach/experimenter/", {"code": gs.experimenter_code})
    return browser


def _store_down(browser: _Browser, gs) -> bool:
    _, body = browser.get(f"/group/session/status/{gs.pk}/store/")
    return json.loads(body)["down"]


def test_redis_down_mid_step_over_two_processes(live_server_factory, private_redis, transactional_db):
    env = {"REDIS_URL": private_redis.url, "CHANNEL_LAYER_PREFIX": "outage-test"}
    console_server, participant_server = live_server_factory(env=env), live_server_factory(env=env)
    get_user_model().objects.create_user("ctl", password=PASSWORD, is_staff=True)
    demo = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
    gs = GroupSession.objects.get(pk=services.start_group_session(experiment=demo, size=3).pk)
    people = [Participant(participant_server, demo.pk) for _ in range(3)]
    console = _console_browser(console_server, gs)
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
            assert "Waiting for the others" in await asyncio.to_thread(answer, 0, 0)
            await ctl.wait_for(lambda s: s["ready"] == 1, timeout=15)

            private_redis.stop()  # down: the context store and the channel layer
            for i in (1, 2):  # accepted while Redis is down
                assert "Waiting for the others" in await asyncio.to_thread(answer, i, 0)
            assert await asyncio.to_thread(_store_down, console, gs) is True
            ctx = (await asyncio.to_thread(GroupSession.objects.get, pk=gs.pk)).context
            assert sorted(r[2] for r in ctx["warmth"]) == [2, 3, 4] and ctx["step_means"] == {"0": 3.0}
            time.sleep(2)
            private_redis.start()  # back, empty

            done = await ctl.wait_for(lambda s: s["all_responded"] and not s["context_store_down"], timeout=30)
            assert sorted(r[2] for r in done["context"]["warmth"]) == [2, 3, 4]
            assert await asyncio.to_thread(_store_down, console, gs) is False
            await ctl.advance(0, timeout=20)
            for person in people:
                moved = await _state_where(person.ws, lambda s: s["step"] == 1, timeout=30)
                assert moved["shared_params"]["colour"] == "red"  # from all three ratings (mean 3)
            for person in people:
                await person.ws.close()

    try:
        asyncio.run(scenario())
    finally:
        console_server.stop()
        participant_server.stop()
    assert Response.objects.filter(group_session=gs, item="warmth").count() == 3
