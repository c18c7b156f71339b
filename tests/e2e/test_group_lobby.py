"""The lobby in the browser (issue 20). Participants come in through the lobby's door
(``/group/session/attach/participant/?experiment=<id>``, no code) onto the live page's
waiting screen, whose lobby line says how many more are needed and the estimated wait;
a participant not placed within ``wait_seconds`` is released and shown the completion
code. A full lobby with the experimenter's console open waits for the console's
*Start now (n waiting)*."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model

from groups import flowservices, services
from groups.models import GroupSession, Membership, StepLog, Timer
from tests.e2e.pages import attach_console
from tests.runner.builders import build_lockstep_experiment

PASSWORD = "pw-lobby-123456"
CODE = "C1A2B3"


def _lobby_experiment(**lobby):
    experiment = build_lockstep_experiment(2, title="Lobby study")
    experiment.lobby = {"release_completion_code": CODE, **lobby}
    experiment.save()
    return experiment


def _come_in(page, base, experiment):
    """Through the door: Join, then the live page's waiting screen."""
    page.goto(f"{base}/group/session/attach/participant/?experiment={experiment.pk}")
    page.get_by_role("button", name="Join").click()
    page.get_by_text("Waiting for the experimenter to start").wait_for()


def _wait_for(check, *, timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.browser
def test_the_lobby_line_counts_down_arrivals_and_a_release_shows_the_code(
    live_server_factory, new_page, transactional_db, artifacts
):
    server = live_server_factory({"GROUP_TIMERS": "1"})  # the release timers fire in the server
    try:
        _lobby_line_scenario(server, new_page, artifacts)
    finally:
        server.stop()


def _lobby_line_scenario(server, new_page, artifacts):
    experiment = _lobby_experiment(min_size=3, max_size=3, wait_seconds=8)
    gs = services.start_group_session(experiment=experiment)  # an online session: no console
    first, second = new_page(width=390, height=844), new_page(width=390, height=844)
    _come_in(first, server.url, experiment)
    line = first.locator("[data-lobby]")
    line.filter(has_text="Waiting for 2 more participants").wait_for()
    assert "1 of 3 here" in line.inner_text() and "about" not in line.inner_text()  # no rate from one arrival
    time.sleep(1.2)  # a measurable arrival rate
    _come_in(second, server.url, experiment)
    for page in (first, second):  # the first page's line follows the second arrival without a reload
        page.locator("[data-lobby]").filter(has_text="Waiting for 1 more participant").wait_for()
    text = line.inner_text()
    assert re.fullmatch(r"Waiting for 1 more participant \(about \d+ s\) · 2 of 3 here", text), text
    first.screenshot(path=str(artifacts / "lobby-line-waiting.png"), full_page=True)
    assert GroupSession.objects.get(pk=gs.pk).phase == "waiting"

    # wait_seconds after each arrival: released, the live page goes to the thank-you page with the code
    for page in (first, second):
        page.get_by_test_id("release-code").wait_for(timeout=20_000)
        assert page.get_by_test_id("release-code").inner_text() == CODE
        assert "released" in page.locator("body").inner_text()
    first.screenshot(path=str(artifacts / "lobby-released-code.png"), full_page=True)
    statuses = set(Membership.objects.filter(group_session=gs).values_list("status", flat=True))
    assert statuses == {"released"}
    assert StepLog.objects.filter(group_session=gs, action="released").count() == 2
    for page in (first, second):
        page.close()


@pytest.mark.browser
def test_a_full_lobby_waits_for_the_open_console_to_start_it(
    live_server_factory, new_page, transactional_db, artifacts
):
    server = live_server_factory({"GROUP_TIMERS": "1"})
    try:
        _console_scenario(server, new_page, artifacts)
    finally:
        server.stop()


def _console_scenario(server, new_page, artifacts):
    get_user_model().objects.create_user("lobbyist", password=PASSWORD, is_staff=True)
    experiment = _lobby_experiment(min_size=2, max_size=3, wait_seconds=120)
    gs = services.start_group_session(experiment=experiment)
    console = new_page()
    attach_console(console, server.url, gs, username="lobbyist", password=PASSWORD)
    console.locator("[data-link]", has_text="online").wait_for()
    _wait_for(lambda: flowservices.console_open(gs.pk), what="the console counted as open")
    prompt = console.locator("[data-lobby-prompt]")
    assert prompt.is_hidden()  # nobody here yet
    pages = [new_page(width=390, height=844), new_page(width=390, height=844)]
    for page in pages:
        _come_in(page, server.url, experiment)
    start_now = console.get_by_role("button", name="Start now (2 waiting)")
    start_now.wait_for()
    _wait_for(lambda: Timer.objects.filter(kind="lobby_start", fired_ms__isnull=False).exists(), what="lobby_start")
    assert Timer.objects.get(kind="lobby_start").data == {"waits_for": "experimenter"}
    time.sleep(0.5)
    assert GroupSession.objects.get(pk=gs.pk).phase == "waiting"  # the open console confirms: not by itself
    assert console.locator("[data-flow-timer]").is_hidden()  # no timer in this experiment: no Extend
    console.screenshot(path=str(artifacts / "lobby-console-start-now.png"), full_page=True)
    start_now.click()
    console.locator("[data-phase]", has_text="running").wait_for()
    assert prompt.is_hidden()
    for page in pages:
        page.locator("input[name=q-warm]").first.wait_for()
    (started,) = StepLog.objects.filter(group_session=gs, action="started")
    assert started.by.username == "lobbyist"
    assert console.locator("[data-flow-timer]").is_hidden()
    for page in pages:
        page.close()
    console.locator("[data-participants] tr", has_text="offline").nth(1).wait_for(timeout=20_000)
