"""Flow control in the browser (issue 20): a 5 s step timer runs out on two Chromium
participant pages that do not answer, the server's timer closes their step as skipped
and the group moves on by itself (auto_advance: timeout); the console counts down."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model

from groups import services
from groups.models import GroupSession, StepLog
from runner.models import ExperimentXForm
from tests.e2e.pages import attach_console
from tests.runner.builders import build_lockstep_experiment

PASSWORD = "pw-flow-123456"


def _join(page, base, experiment, gs):
    page.goto(f"{base}/run/{experiment.pk}/start/")
    page.fill("#id_code", gs.participant_code.lower())
    page.get_by_role("button", name="Join").click()
    page.get_by_text("Waiting for the experimenter to start").wait_for()


@pytest.mark.browser
def test_a_5_second_timer_runs_out_and_the_group_moves_on(live_server_factory, new_page, transactional_db, artifacts):
    server = live_server_factory({"GROUP_TIMERS": "1"})  # its own server, with the timer scheduler
    try:
        _scenario(server, new_page, artifacts)
    finally:
        server.stop()  # before the next tests, which fire their timers themselves


def _scenario(server, new_page, artifacts):
    get_user_model().objects.create_user("timer", password=PASSWORD, is_staff=True)
    experiment = build_lockstep_experiment(3, title="Timed")
    ExperimentXForm.objects.filter(experiment=experiment, handler="group_trial").update(
        flow={"timeout_seconds": 5, "on_timeout": "skip", "auto_advance": "timeout"}
    )
    experiment.save()
    gs = services.start_group_session(experiment=experiment, size=2)
    base = server.url
    console = new_page()
    attach_console(console, base, gs, username="timer", password=PASSWORD)
    console.locator("[data-link]", has_text="online").wait_for()
    pages = [new_page(width=390, height=844), new_page(width=390, height=844)]
    for page in pages:
        _join(page, base, experiment, gs)
    console.locator("[data-participants] tr", has_text="online").nth(1).wait_for()

    console.get_by_role("button", name="Start", exact=True).click()
    for page in pages:
        page.locator("input[name=q-warm]").first.wait_for()
    countdown = console.get_by_test_id("console-countdown")
    countdown.wait_for()
    left = int(countdown.get_attribute("data-countdown-ms"))
    assert 0 < left <= 5200, left  # from the step's onset (repainted every 100 ms, on each page's clock estimate)
    console.screenshot(path=str(artifacts / "flow-console-countdown.png"), full_page=True)
    started = time.monotonic()
    console.locator("[data-step]", has_text="1").wait_for(timeout=20_000)  # nobody answered: the timer did it
    for page in pages:
        page.locator("input[name=q-_group_step][value='1']").wait_for(state="attached", timeout=15_000)
    assert time.monotonic() - started < 15
    pages[0].screenshot(path=str(artifacts / "flow-participant-step1.png"), full_page=True)

    log = list(StepLog.objects.filter(group_session=gs).order_by("at_ms", "id").values_list("action", "data"))
    actions = [action for action, _data in log]
    assert actions.count("skipped") == 2 and "timer_expired" in actions
    assert ("advanced", {"from": 0, "by": "auto"}) in log
    assert GroupSession.objects.get(pk=gs.pk).step == 1
    for page in pages:
        page.close()
    console.locator("[data-participants] tr", has_text="offline").nth(1).wait_for(timeout=20_000)


@pytest.mark.browser
def test_the_live_page_counts_down_with_the_console_and_submits_what_is_filled(
    live_server_factory, new_page, transactional_db, artifacts
):
    """on_timeout: submit on the live page: both pages count down the same seconds as the
    console (the step's starts_at + timeout); at the deadline each sends what is filled:
    one answered "Yes" without pressing Next, the other nothing (stored as missing)."""
    server = live_server_factory({"GROUP_TIMERS": "1"})
    try:
        _submit_scenario(server, new_page, artifacts)
    finally:
        server.stop()


def _submit_scenario(server, new_page, artifacts):
    from runner.models import Response

    get_user_model().objects.create_user("timer", password=PASSWORD, is_staff=True)
    experiment = build_lockstep_experiment(3, title="Timed submit")
    ExperimentXForm.objects.filter(experiment=experiment, handler="group_trial").update(
        flow={"timeout_seconds": 5, "on_timeout": "submit", "auto_advance": "timeout"}
    )
    experiment.save()
    gs = services.start_group_session(experiment=experiment, size=2)
    console = new_page()
    attach_console(console, server.url, gs, username="timer", password=PASSWORD)
    console.locator("[data-link]", has_text="online").wait_for()
    pages = [new_page(width=390, height=844), new_page(width=390, height=844)]
    for page in pages:
        _join(page, server.url, experiment, gs)
    console.locator("[data-participants] tr", has_text="online").nth(1).wait_for()
    console.get_by_role("button", name="Start", exact=True).click()
    for page in pages:
        page.locator("input[name=q-warm]").first.wait_for()
    lefts = [int(p.locator("[data-countdown]").get_attribute("data-countdown-ms")) for p in (console, *pages)]
    assert all(0 < left <= 5200 for left in lefts), lefts  # from the onset (repainted every 100 ms)
    assert max(lefts) - min(lefts) < 600, lefts  # the same seconds everywhere (ticks of 100 ms, reading order)
    pages[0].locator("input[name=q-warm][value=Yes]").check()  # filled, never sent by the participant
    pages[0].screenshot(path=str(artifacts / "flow-live-countdown.png"), full_page=True)
    console.locator("[data-step]", has_text="1").wait_for(timeout=20_000)
    values = sorted(Response.objects.filter(group_session=gs, step=0, item="warm").values_list("value", flat=True))
    assert values == ["", "Yes"]  # what was filled, and the other as missing
    actions = list(StepLog.objects.filter(group_session=gs).values_list("action", flat=True))
    assert "timer_expired" in actions and ("advanced" in actions)
    for page in pages:
        page.close()
    console.locator("[data-participants] tr", has_text="offline").nth(1).wait_for(timeout=20_000)
