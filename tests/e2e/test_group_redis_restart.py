"""A Redis restart in the middle of a live session loses no context and no answer.

Two daphne processes share PostgreSQL/SQLite and a PRIVATE redis-server (on a free
port, started by this test: never the shared one). Three bots play the colour demo
(bots.testing.run_bots: the run page, the participant sockets, the live page's answers)
spread over both processes, the rehearsal's experimenter on the first. Bot 3 takes its
time over step 0 (tests/groups/colour_bots.py, ``SLOW``): Redis restarts, empty, once
the other two answers of that step are stored and before the third. The step still
completes with every rating in the context, everyone follows the next advance (the
next colour chosen from all three ratings), and every answer is in the database.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from bots.testing import run_bots
from groups.models import GroupSession, StepLog
from runner.definitions.loader import load_file
from runner.models import Response
from tests.groups import colour_bots

SLOW_SECONDS = 6.0  # bot 3 over step 0: the restart falls in between


def play_in_background(url: str, experiment: str, count: int, **plan) -> tuple[threading.Thread, dict]:
    """``run_bots`` in a thread (the test does something to the servers meanwhile); the
    report lands in the returned dict under ``report`` (or the exception under ``error``)."""
    out: dict = {}

    def play():
        try:
            out["report"] = run_bots(url, experiment, count, **plan)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=play, name="bots", daemon=True)
    thread.start()
    return thread, out


def warmth_rows(experiment, step: int) -> int:
    return Response.objects.filter(session__experiment=experiment, item="warmth", step=step).count()


def wait_until(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.05)


def test_redis_restart_mid_step_over_two_processes(live_server_factory, private_redis, transactional_db, monkeypatch):
    env = {"REDIS_URL": private_redis.url, "CHANNEL_LAYER_PREFIX": "restart-test"}
    console_server, participant_server = live_server_factory(env=env), live_server_factory(env=env)
    demo = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
    monkeypatch.setitem(colour_bots.SLOW, (3, 0), SLOW_SECONDS)
    try:
        thread, out = play_in_background(f"{console_server.url},{participant_server.url}", "demo-colors", 3,
                                         start_group=True, bots_module="tests.groups.colour_bots")  # fmt: skip
        wait_until(lambda: warmth_rows(demo, 0) >= 2 or not thread.is_alive(), what="two answers of step 0")
        assert warmth_rows(demo, 0) == 2, out  # the third is still thinking
        private_redis.stop()
        private_redis.start()  # same port, every key gone: context, channel-layer groups
        thread.join(180)
    finally:  # they use the private redis-server, which goes with this test
        console_server.stop()
        participant_server.stop()
    assert not thread.is_alive() and "error" not in out, out
    report = out["report"]
    assert report["ok"], report
    assert report["answers"] == {"sent": 12, "stored": 12, "lost": 0, "doubled": 0, "played_by_bot": 0}
    gs = GroupSession.objects.get(pk=report["group_session"])
    assert sorted(r[2] for r in gs.context["warmth"] if r[0] == 0) == [2, 3, 4]  # the one after the restart too
    assert gs.context["step_means"] == {"0": 3.0, "1": 4.0, "2": 5.0}
    step_1 = StepLog.objects.get(group_session=gs, action="advanced", step=1)
    assert step_1.shared_params["colour"] == "red"  # lavender, then warm (mean 3 <= 4): red
    rows = Response.objects.filter(group_session=gs, item="warmth")
    assert sorted((r.step, float(r.value)) for r in rows) == [(s, 2.0 + i + s) for s in range(3) for i in range(3)]
