"""run_bots plays the solo demo and the group demo to the end against a live server
(daphne on the test database; PostgreSQL + Redis or the embedded defaults, whichever the
run uses), with the default bot and with a written bots.py (tests/bots/packages/botdemo);
a failing ``expect`` exits 1 naming bot, form and step."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from bots.testing import run_bots
from groups.models import GroupSession
from runner.definitions.loader import load_file
from runner.models import Response, Session

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo"


def _load(path: Path):
    return load_file(path=path).experiment


def _answers(experiment, key: str) -> list:
    rows = Response.objects.filter(session__experiment=experiment, question__key=key)
    return list(rows.values_list("value", flat=True))


def _assert_clean(report: dict, *, bots: int, answers: int) -> None:
    assert report["ok"], {k: report[k] for k in ("status", "answers", "error_samples", "drops", "expectations_failed")}
    assert report["status"] == {"finished": bots}
    assert report["answers"] == {"sent": answers, "stored": answers, "lost": 0, "doubled": 0, "played_by_bot": 0}
    assert report["errors"] == 0 and report["expectations_failed"] == []


def test_default_bot_plays_the_solo_demo(transactional_db, bots_server):
    solo = _load(DEMO / "solo.yaml")
    report = run_bots(bots_server.url, "demo-solo", 3)
    _assert_clean(report, bots=3, answers=3 * 5)  # consent, survey, three word trials
    sessions = Session.objects.filter(experiment=solo)
    assert sessions.count() == 3 and all(s.is_bot and s.end for s in sessions)
    assert len(_answers(solo, "alertness")) == 3 and all(1 <= int(v) <= 10 for v in _answers(solo, "alertness"))
    trials = Response.objects.filter(session__experiment=solo, item__startswith="jspsych:")
    assert trials.count() == 9 and {t.jspsych_data["response"] for t in trials} <= {"f", "j"}
    assert {row["label"] for row in report["steps"]} == {"form consent", "form survey", "form word-trial"}


def test_default_bot_plays_the_group_demo(transactional_db, bots_server):
    colors = _load(DEMO / "colors.yaml")
    report = run_bots(bots_server.url, "demo-colors", 4, think=(0.0, 0.2), join="code")
    _assert_clean(report, bots=4, answers=4 * 4)  # consent and three steps
    assert report["group_page"] == "live"  # the live participant page (issue 16), one document per group part
    gs = GroupSession.objects.get(pk=report["group_session"])
    assert gs.phase == "ended" and gs.experiment == colors
    steps = [row for row in report["steps"] if row["label"].startswith("step")]
    assert [(r["label"], r["measure"], r["n"]) for r in steps] == [
        (f"step {i}", "click -> screen", 4) for i in range(3)
    ]
    assert all(r["p50_ms"] is not None and r["p99_ms"] >= r["p50_ms"] for r in steps)
    warmth = Response.objects.filter(group_session=gs, question__key="warmth")
    assert sorted(warmth.values_list("step", flat=True)) == sorted([0, 1, 2] * 4)


def test_written_bots_play_both_demos(transactional_db, bots_server, botdemo):
    solo, colors = _load(botdemo / "solo.yaml"), _load(botdemo / "colors.yaml")
    report = run_bots(bots_server.url, "bots-solo", 2)
    assert report["script"] == "botdemo.bots"
    _assert_clean(report, bots=2, answers=2 * 5)
    assert _answers(solo, "hand") == ["Left", "Left"]
    assert sorted(int(float(v)) for v in _answers(solo, "confidence")) == [2, 2, 3, 3, 4, 4]  # visit + 1
    for trial in Response.objects.filter(session__experiment=solo, item__startswith="jspsych:"):
        assert trial.jspsych_data["response"] == trial.jspsych_data["correct_key"]
    report = run_bots(bots_server.url, "bots-colors", 3)
    _assert_clean(report, bots=3, answers=3 * 4)
    for row in Response.objects.filter(session__experiment=colors, question__key="warmth"):
        expected = 7 if row.shared_params["palette"] in ("start", "warm") else 1
        assert int(float(row.value)) == expected, (row.step, row.shared_params, row.value)


def test_a_failing_expect_exits_1_naming_bot_form_and_step(transactional_db, bots_server, botdemo):
    _load(botdemo / "colors.yaml")
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("run_bots", "--experiment", "bots-colors", "--count", "2", "--url", bots_server.url,
                     "--bots", "botdemo.failing", "--timeout", "60", stdout=out)  # fmt: skip
    assert exited.value.code == 1
    text = out.getvalue()
    assert "expectations failed: 2" in text and "NOT OK" in text
    for bot in (1, 2):
        assert f"bot {bot}, form 'colour-trial', step 1: the colour at step 1 is never shown" in text


def test_bad_input_is_refused_before_anything_starts(transactional_db, bots_server):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no experiment with slug 'nope'"):
        call_command("run_bots", "--experiment", "nope", "--count", "2", "--url", bots_server.url)
    _load(DEMO / "solo.yaml")
    with pytest.raises(CommandError, match="solo experiment"):
        call_command("run_bots", "--experiment", "demo-solo", "--count", "1", "--start-group", "--url", bots_server.url)
    with pytest.raises(CommandError, match="--drop-rate"):
        call_command("run_bots", "--experiment", "demo-solo", "--count", "1", "--drop-rate", "2")
    assert not Session.objects.exists()


def test_bots_that_drop_out_come_back_and_nothing_is_lost(transactional_db, bots_server):
    _load(DEMO / "colors.yaml")
    report = run_bots(bots_server.url, "demo-colors", 4, drop_rate=0.4, think=(0.0, 0.2), seed=3)
    assert report["drops"] > 0
    _assert_clean(report, bots=4, answers=4 * 4)


def test_bots_from_one_address_join_by_code_past_the_address_limit(transactional_db, live_server_factory):
    """A room behind one address (here: every bot on 127.0.0.1) typing the right participant
    code at once: none is refused, even with an address limit far below the room's size;
    wrong codes are what the address limit counts (tests/groups/test_code_attempts.py)."""
    server = live_server_factory(env={"CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS": "3"})
    try:
        _load(DEMO / "colors.yaml")
        report = run_bots(server.url, "demo-colors", 12, start_group=True, join="code", think=(0.0, 0.2))
        _assert_clean(report, bots=12, answers=12 * 4)
        assert report["rate_limited"] == 0  # no 429 for a right code
    finally:
        server.stop()
