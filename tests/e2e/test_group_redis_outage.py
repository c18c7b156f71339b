"""Redis down (not just restarted) in the middle of a live step, over two daphne
processes (issue 14, cause 7): answers are still accepted over HTTP, their hooks'
context writes are kept in the database, the console says the context store is down,
and when Redis is back the console and the participants carry on from complete data.

Three bots play the colour demo (bots.testing.run_bots) spread over both processes, the
rehearsal's experimenter on the first; both use a PRIVATE redis-server (never the shared
one) for the channel layer and the context store. Bots 2 and 3 take their time over
step 0 (tests/groups/colour_bots.py): Redis goes down after bot 1's answer and stays down
until theirs are stored.
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.contrib.auth import get_user_model

from groups.client import _Browser
from groups.models import GroupSession, StepLog
from runner.definitions.loader import load_file
from runner.models import Response
from tests.e2e.test_group_redis_restart import play_in_background, wait_until, warmth_rows
from tests.groups import colour_bots

PASSWORD = "pw-outage-123456"
SLOW_SECONDS = 4.0  # bots 2 and 3 over step 0: they answer while Redis is down


def _console_browser(server, gs) -> _Browser:
    browser = _Browser(server.url)
    browser.post_form("/editor/login/?next=/editor/", {"username": "ctl", "password": PASSWORD})
    browser.post_form("/group/session/attach/experimenter/", {"code": gs.experimenter_code})
    return browser


def _store_down(browser: _Browser, gs) -> bool:
    _, body = browser.get(f"/group/session/status/{gs.pk}/store/")
    return json.loads(body)["down"]


def test_redis_down_mid_step_over_two_processes(live_server_factory, private_redis, transactional_db, monkeypatch):
    env = {"REDIS_URL": private_redis.url, "CHANNEL_LAYER_PREFIX": "outage-test"}
    console_server, participant_server = live_server_factory(env=env), live_server_factory(env=env)
    get_user_model().objects.create_user("ctl", password=PASSWORD, is_staff=True)
    demo = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
    for bot in (2, 3):
        monkeypatch.setitem(colour_bots.SLOW, (bot, 0), SLOW_SECONDS)
    try:
        thread, out = play_in_background(f"{console_server.url},{participant_server.url}", "demo-colors", 3,
                                         start_group=True, bots_module="tests.groups.colour_bots")  # fmt: skip
        wait_until(lambda: GroupSession.objects.filter(experiment=demo).exists(), what="the bots' group session")
        gs = GroupSession.objects.get(experiment=demo)
        console = _console_browser(console_server, gs)  # attached while the code counters (Redis) are up
        wait_until(lambda: warmth_rows(demo, 0) >= 1 or not thread.is_alive(), what="bot 1's answer of step 0")
        assert warmth_rows(demo, 0) == 1, out
        private_redis.stop()  # down: the context store and the channel layer
        wait_until(lambda: warmth_rows(demo, 0) == 3, what="bots 2 and 3's answers, accepted while Redis is down")
        assert _store_down(console, gs) is True
        ctx = GroupSession.objects.get(pk=gs.pk).context  # the hooks' writes, kept in the database
        assert sorted(r[2] for r in ctx["warmth"]) == [2, 3, 4] and ctx["step_means"] == {"0": 3.0}
        time.sleep(2)
        private_redis.start()  # back, empty
        wait_until(lambda: not _store_down(console, gs), timeout=30, what="the console's store notice to clear")
        thread.join(180)
    finally:
        console_server.stop()
        participant_server.stop()
    assert not thread.is_alive() and "error" not in out, out
    report = out["report"]
    assert report["ok"], report  # the group went on: every step advanced, every bot at the end
    assert report["answers"] == {"sent": 12, "stored": 12, "lost": 0, "doubled": 0, "played_by_bot": 0}
    step_1 = StepLog.objects.get(group_session=gs, action="advanced", step=1)
    assert step_1.shared_params["colour"] == "red"  # from all three ratings (mean 3)
    assert Response.objects.filter(group_session=gs, item="warmth").count() == 9
