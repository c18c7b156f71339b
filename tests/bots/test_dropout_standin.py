"""Dropout policy ``bot`` with the bots of issue 19 (issue 20's acceptance, bounded): a
rehearsal whose bots drop out (socket closed, away longer than ``dropout.after_seconds``)
on an experiment that auto-advances finishes every step; every dropout is declared and
flagged, the stand-in bot (bots/standin.py, registered in groups.flowservices.BOT_PLAYERS
by BotsConfig.ready) answers for the absent participant in the server process until they
are back, and every answer is stored once (the person's or the stand-in's)."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from bots import standin
from bots.testing import run_bots
from groups import flowservices
from groups.models import GroupSession, StepLog
from runner.definitions.loader import load_file
from runner.models import Response
from tests.bots.conftest import PACKAGES
from tests.e2e.conftest import e2e_static_root, live_server_factory  # noqa: F401 - fixtures used here

# The acceptance's 50 participants by hand: STANDIN_BOTS=50 (figures in docs/bots.md).
COUNT, STEPS = int(os.environ.get("STANDIN_BOTS", "12")), 3


@pytest.fixture(scope="module")
def flow_server(live_server_factory):  # noqa: F811
    """Its own server with the timer scheduler (dropouts and auto-advance are timers),
    stopped with the module: left running (the factory stops its servers only at the end
    of the session) it fired the timers of later tests that fire their own."""
    server = live_server_factory(env={"EXPERIMENTS_PATH": str(PACKAGES), "GROUP_TIMERS": "1"})
    yield server
    server.stop()


def test_the_stand_in_is_registered_by_the_bots_app():
    assert standin.play in flowservices.BOT_PLAYERS


def test_a_rehearsal_with_dropouts_and_policy_bot_finishes_every_step(transactional_db, flow_server, botdemo):
    load_file(path=botdemo / "dropout.yaml")
    report = run_bots(flow_server.url, "bots-dropout", COUNT, advance="start", drop_rate=0.1,
                      drop_seconds=(2.5, 3.5), seed=3, timeout=120.0)  # fmt: skip
    summary = {k: report[k] for k in ("status", "answers", "error_samples", "drops", "dropped_out", "dropped_bots",
                                      "flagged_bots", "seconds", "steps")}  # fmt: skip
    print("rehearsal", summary, report["answers"])
    assert report["ok"], summary
    assert report["status"] == {"finished": COUNT}
    assert report["drops"] >= 2, summary  # the seed makes bots drop (a test of nothing otherwise)
    # every bot that dropped out was declared so (a second drop while still declared is the same dropout)
    assert report["dropped_bots"] == report["flagged_bots"] and 0 < report["dropped_out"] <= report["drops"], summary
    answers = report["answers"]
    assert answers["lost"] == 0 and answers["doubled"] == 0 and answers["played_by_bot"] >= 1, summary
    assert answers["stored"] == answers["sent"] + answers["played_by_bot"] == COUNT * (1 + STEPS), summary
    gs = GroupSession.objects.get(pk=report["group_session"])
    rows = Response.objects.filter(group_session=gs, question__key="warmth").values_list("session_id", "step")
    assert Counter(Counter(rows).values()) == {1: COUNT * STEPS}  # every run, every step, once
    assert sorted({step for _s, step in rows}) == list(range(STEPS))
    log = StepLog.objects.filter(group_session=gs)
    assert log.filter(action="advanced").count() >= STEPS - 1
    assert all(e.data["by"] == "auto" for e in log.filter(action="advanced"))  # the server moved the group on
    assert log.filter(action="dropped_out").count() == report["dropped_out"]
    assert log.filter(action="bot_answered").count() == answers["played_by_bot"]
    assert all(e.data["bot"] is True for e in log.filter(action="bot_answered"))
