"""The jsPsych dialect in Chromium (issue 17): functions and timeline builders from the
package's jspsych.js, timeline variables, a survey plugin beside our own questions, and a
failing timeline that the participant, the server log and the experimenter see.

The experiment package is ``tests/e2e/packages/rtport`` (its folder on EXPERIMENTS_PATH
of the server these tests start)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from runner.models import Response, Session, TimelineFailure
from tests.factories import TicketFactory
from tests.runner.builders import build_experiment

pytestmark = [pytest.mark.browser]

PACKAGES = Path(__file__).resolve().parent / "packages"
CB = "rtport.timelines"


@pytest.fixture(scope="module")
def server(live_server_factory):
    """A server that finds the ``rtport`` package (EXPERIMENTS_PATH)."""
    return live_server_factory(env={"EXPERIMENTS_PATH": str(PACKAGES)})


def _experiment(script: str, questions=None, **kwargs):
    return build_experiment(
        [{"name": "task", "handler": "form_generic", "stimulus_script": f"{CB}.{script}",
          "questions": questions or []},
         {"name": "end", "handler": "form_end_session"}],
        **kwargs,
    )  # fmt: skip


def _start(page, server, experiment):
    ticket = TicketFactory(experiment=experiment)
    page.goto(f"{server.url}/run/{experiment.pk}/start/?tc={ticket.code}")


def _trials(experiment) -> list[dict]:
    rows = Response.objects.filter(experiment=experiment, item__startswith="jspsych:").order_by("trial_index")
    return [r.jspsych_data for r in rows]


def _respond_to_circles(page, count: int, keys: list[str]):
    for i in range(count):
        page.wait_for_selector(".rt-stim")
        colour = page.locator(".rt-stim").get_attribute("style")
        page.keyboard.press(keys[i])
        page.wait_for_selector(".rt-stim", state="detached")
        yield colour


def test_timeline_variables_randomize_order_and_named_on_finish(transactional_db, server, page, artifacts, tmp_path):
    experiment = _experiment("rt_task")
    _start(page, server, experiment)
    page.wait_for_selector("#rt-welcome")
    page.keyboard.press("x")
    page.wait_for_selector(".rt-stim")
    page.screenshot(path=str(artifacts / "dialect-rt-task.png"), full_page=True)
    shown = list(_respond_to_circles(page, 2, ["f", "f"]))
    page.wait_for_selector("[data-end-page]")
    trials = _trials(experiment)
    responses = [t for t in trials if t.get("task") == "response"]
    assert len(trials) == 5 and len(responses) == 2
    assert {t["colour"] for t in responses} == {"blue", "orange"}  # each timeline variable row once
    for trial, style in zip(responses, shown, strict=True):
        assert trial["trial_type"] == "html-keyboard-response" and trial["response"] == "f"
        assert isinstance(trial["rt"], int | float) and isinstance(trial["time_elapsed"], int | float)
        assert trial["correct_response"] == ("f" if "1f5fbf" in style else "j")  # timelineVariable inside data
        assert trial["correct"] is (trial["correct_response"] == "f")  # set by the registered on_finish
    _assert_exports(experiment, tmp_path, keys=("trial_type", "response", "rt", "time_elapsed", "correct"))


def _read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _assert_exports(experiment, tmp_path, *, keys):
    """Every key is a column of csv-long, csv-wide and psychds, each described in its dictionary."""
    from exports.services import run_export

    for fmt in ("csv-long", "csv-wide", "psychds"):
        files = _read_zip(run_export(experiment=experiment, fmt=fmt, out=tmp_path / f"{fmt}.zip").path)
        tables = {n: list(csv.reader(io.StringIO(d.decode()))) for n, d in files.items() if n.endswith(".csv")}
        data = {n: t for n, t in tables.items() if "dictionary" not in n}
        dictionaries = {n: t for n, t in tables.items() if "dictionary" in n}
        header = [c for t in data.values() for c in t[0]]
        described = {row[0]: row[1] for t in dictionaries.values() for row in t[1:]}
        for key in keys:
            pattern = rf"jspsych\.t\d+\.{key}__f1_v1" if fmt == "csv-wide" else rf"jspsych\.{key}"
            columns = [c for c in header if re.fullmatch(pattern, c)]
            assert columns, f"{fmt}: no column for jsPsych key {key!r} in {header}"
            for column in columns:
                assert described.get(column, "").strip(), f"{fmt}: {column} has no dictionary entry"
        if fmt == "psychds":
            root = next(iter(files)).split("/")[0]
            measured = {v["name"] for v in json.loads(files[f"{root}/dataset_description.json"])["variableMeasured"]}
            assert set(header) <= measured


def test_conditional_and_loop_functions_from_the_package(transactional_db, server, page):
    experiment = _experiment("conditions_and_loops")
    _start(page, server, experiment)
    for done in range(2):
        page.wait_for_selector(f"#looped-{done}")
        assert page.locator("#skipped").count() == 0
        page.get_by_role("button", name="Next").click()
    page.wait_for_selector("[data-end-page]")
    trials = _trials(experiment)
    assert [t["trial_type"] for t in trials] == ["html-button-response"] * 2 + ["call-function"]
    assert ["looped-0" in trials[0]["stimulus"], "looped-1" in trials[1]["stimulus"]] == [True, True]  # dynamic
    assert trials[2]["value"] == "loops:2"  # call-function's func, after on_start ran in both rounds


def test_registered_timeline_builder(transactional_db, server, page, artifacts):
    experiment = _experiment("built")
    _start(page, server, experiment)
    page.wait_for_selector("#rt-welcome")
    page.keyboard.press("x")
    list(_respond_to_circles(page, 2, ["f", "j"]))
    page.wait_for_selector("#rt-debrief")
    page.screenshot(path=str(artifacts / "dialect-builder-debrief.png"), full_page=True)
    page.get_by_role("button", name="Done").click()
    page.wait_for_selector("[data-end-page]")
    trials = _trials(experiment)
    assert [t["trial_type"] for t in trials].count("html-keyboard-response") == 5
    responses = [t for t in trials if t.get("task") == "response"]
    assert sorted(t["correct_response"] for t in responses) == ["f", "j"]
    assert all(isinstance(t["correct"], bool) for t in responses)
    assert trials[-1]["trial_type"] == "html-button-response"


def test_survey_likert_then_our_questions_on_the_same_page(transactional_db, server, page, artifacts):
    experiment = _experiment("likert", questions=[{"key": "sleep", "choices": ["Yes", "No"]}])
    _start(page, server, experiment)
    page.wait_for_selector("#jspsych-survey-likert-form")
    assert page.locator("form[data-run-form] #jspsych-host").count() == 0  # the host is beside our form
    page.get_by_label("Somewhat").check()
    page.screenshot(path=str(artifacts / "dialect-likert.png"), full_page=True)
    page.locator("#jspsych-survey-likert-next").click()
    page.wait_for_selector("#questions", state="visible")
    page.get_by_label("Yes", exact=True).check()
    page.get_by_role("button", name="Next").click()
    page.wait_for_selector("[data-end-page]")
    rows = {r.item: r for r in Response.objects.filter(experiment=experiment)}
    assert rows["sleep"].value == "Yes"
    likert = rows["jspsych:0"].jspsych_data
    assert likert["trial_type"] == "survey-likert" and likert["response"] == {"alert": 2}
    assert isinstance(likert["rt"], int | float)


def test_unknown_function_stops_the_page_reports_it_and_stores_nothing(transactional_db, server, page, artifacts):
    experiment = _experiment("unknown_function", questions=[{"key": "sleep", "choices": ["Yes", "No"]}])
    _start(page, server, experiment)
    panel = page.wait_for_selector("[data-timeline-error]:not(.d-none)")
    assert "noSuchFunction" in panel.inner_text()
    assert page.locator("form[data-run-form]").count() == 0  # nothing left to submit
    page.screenshot(path=str(artifacts / "dialect-unknown-function.png"), full_page=True)
    failure = _wait_for(lambda: TimelineFailure.objects.filter(experiment=experiment).first())
    assert failure.kind == "unknown_function" and "noSuchFunction" in failure.message
    session = Session.objects.get(experiment=experiment)
    assert failure.session_id == session.pk and failure.form_order == 1
    assert not Response.objects.filter(experiment=experiment).exists()
    log = _wait_for(lambda: next((line for line in server.log().splitlines() if "timeline failed" in line), None))
    assert f"experiment={experiment.slug}" in log and "form=task" in log and "kind=unknown_function" in log
    assert session.run_token not in server.log()


def _wait_for(probe, timeout: float = 10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


GROUP_PASSWORD = "pw-dialect-123456"


def test_group_console_shows_the_failure_and_skips_the_form(transactional_db, server, new_page, artifacts):
    """A group participant's timeline names an unknown function: the console shows a notice;
    the experimenter skips the form; the participant's "Try again" moves on; nothing stored."""
    from django.contrib.auth import get_user_model

    from groups import services as group_services

    lead = get_user_model().objects.create_user("lead", password=GROUP_PASSWORD, is_staff=True)
    experiment = build_experiment(
        [{"name": "trial", "handler": "group_trial", "stimulus_script": f"{CB}.unknown_function",
          "questions": [{"key": "warm", "choices": ["Yes", "No"]}]},
         {"name": "end", "handler": "form_end_session"}],
        is_group=True,
    )  # fmt: skip
    gs = group_services.start_group_session(experiment=experiment, size=1, experimenter=lead)
    console = new_page()
    console.on("dialog", lambda dialog: dialog.accept())
    console.goto(f"{server.url}/group/session/status/{gs.pk}/")
    console.fill("#id_username", "lead")
    console.fill("#id_password", GROUP_PASSWORD)
    console.locator("input[type=submit], button[type=submit]").first.click()
    console.wait_for_url(f"**/group/session/status/{gs.pk}/")
    console.locator("[data-link]", has_text="online").wait_for()

    person = new_page()
    person.goto(f"{server.url}/run/{experiment.pk}/start/")
    person.fill("#id_code", gs.participant_code.lower())
    person.get_by_role("button", name="Join").click()
    person.get_by_text("Waiting for the experimenter to start").wait_for()
    console.wait_for_function("() => document.querySelector('[data-ready]').textContent.startsWith('1 of 1')")
    console.get_by_role("button", name="Start", exact=True).click()

    panel = person.wait_for_selector("[data-timeline-error]:not(.d-none)", timeout=20_000)
    assert "noSuchFunction" in panel.inner_text()
    person.screenshot(path=str(artifacts / "dialect-group-error-page.png"), full_page=True)
    notice = console.locator("[data-failures] li", has_text="noSuchFunction")
    notice.wait_for(timeout=15_000)
    pseudonym = Session.objects.get(experiment=experiment).group_membership.pseudonym
    assert pseudonym in notice.inner_text() and "unknown_function" in notice.inner_text()
    console.screenshot(path=str(artifacts / "dialect-console-notice.png"), full_page=True)
    assert f"group_session={gs.pk}" in server.log()

    notice.get_by_role("button", name=f"Skip this form for {pseudonym}").click()
    console.locator("[data-failures] li", has_text="skipped").wait_for()
    person.get_by_role("button", name="Try again").click()
    person.wait_for_selector("[data-end-page]")
    assert not Response.objects.filter(experiment=experiment).exists()
    assert TimelineFailure.objects.get(experiment=experiment).skipped_by == lead
    # No socket left open at teardown (its presence writes deadlocked the database flush).
    person.close()
    console.locator("[data-participants] tr", has_text="offline").first.wait_for(timeout=20000)
    console.close()


@pytest.mark.parametrize(
    ("script", "kind", "text"),
    [
        ("throws", "exception", "boom from the package"),
        ("missing_media", "media", "no-such-image.png"),
        ("unknown_plugin", "unknown_plugin", 'Unknown jsPsych plugin "no-such-plugin"'),
    ],
)
def test_exceptions_media_and_unknown_plugins_stop_the_page(transactional_db, server, page, script, kind, text):
    experiment = _experiment(script)
    _start(page, server, experiment)
    if script == "throws":
        page.wait_for_selector("#first")
        page.keyboard.press("a")
    panel = page.wait_for_selector("[data-timeline-error]:not(.d-none)")
    assert text in panel.inner_text()
    failure = _wait_for(lambda: TimelineFailure.objects.filter(experiment=experiment).first())
    assert failure.kind == kind and text in failure.message
    assert page.locator("#second").count() == 0
    assert not Response.objects.filter(experiment=experiment).exists()


def test_an_error_after_the_timeline_leaves_the_questions_alone(transactional_db, server, page):
    experiment = _experiment("late_error", questions=[{"key": "sleep", "choices": ["Yes", "No"]}])
    _start(page, server, experiment)
    page.wait_for_selector("#questions", state="visible")
    page.wait_for_timeout(800)  # the timer has thrown by now
    assert page.locator("[data-timeline-error]").is_hidden()
    page.get_by_label("Yes", exact=True).check()
    page.get_by_role("button", name="Next").click()
    page.wait_for_selector("[data-end-page]")
    assert Response.objects.filter(experiment=experiment, item="sleep").exists()
    assert not TimelineFailure.objects.filter(experiment=experiment).exists()
