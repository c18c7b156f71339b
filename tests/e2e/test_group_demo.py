"""The colour demo (experiments/demo/colors.yaml) live in Chromium: the experimenter's
console and three participants (separate browser contexts, one of them a phone) go
through three lockstep steps. One participant reloads mid-step and resumes on the
same step. Every answer ends in the database with its step and the step's shared
parameters (the colour chosen by ``demo.colors.on_advance``), and each session keeps
the clock offset its page estimated over the participant socket."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from groups.models import Group, GroupSession, Membership, StepLog
from runner.definitions.loader import load_file
from runner.models import Response, Session

PASSWORD = "pw-demo-123456"
STEPS = 3
RELOADER = 1  # the phone reloads its page in the middle of step 1


def rating(person: int, step: int) -> int:
    return 2 + person + step  # 1..7 slider


def log_in_and_start_session(console, base, experiment) -> GroupSession:
    console.goto(f"{base}/group/session/start/")
    console.fill("#id_username", "lead")
    console.fill("#id_password", PASSWORD)
    console.locator("input[type=submit], button[type=submit]").first.click()
    console.wait_for_url("**/group/session/start/")
    console.select_option("#id_experiment", str(experiment.pk))
    console.select_option("#id_group", str(Group.objects.get(name="Lab 1").pk))
    console.fill("#id_size", "3")
    console.get_by_role("button", name="Start session").click()
    console.wait_for_url("**/group/session/status/*/")
    gs = GroupSession.objects.get(pk=int(console.url.rstrip("/").rsplit("/", 1)[1]))
    console.locator("[data-link]", has_text="online").wait_for()
    return gs


def join(participant, base, experiment, code: str) -> None:
    participant.goto(f"{base}/run/{experiment.pk}/start/")  # no ticket: the participant-code page
    participant.fill("#id_code", code.lower())
    participant.get_by_role("button", name="Join").click()
    participant.get_by_label("I agree", exact=True).check()
    participant.get_by_role("button", name="Next").click()
    participant.get_by_text("Waiting for the experimenter to start").wait_for()


def console_state(console) -> dict:
    return json.loads(console.locator("[data-shared]").inner_text())


def wait_console(console, predicate_js: str) -> None:
    console.wait_for_function(predicate_js, timeout=20_000)


def on_trial(participant, step: int, hex_colour: str, screenshot=None) -> None:
    """The trial page of ``step``: the shared colour, then the slider after the button."""
    participant.locator(f"input[name='q-_group_step'][value='{step}']").wait_for(state="attached")
    swatch = participant.get_by_role("img", name="a colour swatch")
    assert hex_colour in swatch.get_attribute("style")
    if screenshot:
        participant.screenshot(path=str(screenshot), full_page=True)
    participant.get_by_role("button", name="I have seen the colour").click()
    participant.locator("input[name=q-warmth]").wait_for()


def answer(participant, value: int, *, last: bool) -> None:
    """Rate on the slider and submit: the waiting screen follows, or after the loop's
    last round (``repeat: 3``) the end page."""
    slider = participant.locator("input[name=q-warmth]")
    slider.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true}));"
        " el.dispatchEvent(new Event('change', {bubbles: true})); }",
        str(value),
    )
    assert participant.locator("[data-slider-output]").inner_text() == str(value)
    # a person takes seconds here; the page has its first clock estimate from the socket by then
    participant.wait_for_function("() => document.querySelector('input[name=_clock_rtt_ms]').value !== ''")
    participant.get_by_role("button", name="Next").click()
    participant.get_by_text("Thank you for taking part" if last else "Waiting for the others").first.wait_for()


@pytest.mark.browser
def test_console_and_three_participants_run_the_colour_demo(daphne_server, new_page, transactional_db, artifacts):
    base = daphne_server.url
    experiment = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
    get_user_model().objects.create_user("lead", password=PASSWORD, is_staff=True)
    Group.objects.create(name="Lab 1")

    console = new_page()
    console.on("dialog", lambda dialog: dialog.accept())
    gs = log_in_and_start_session(console, base, experiment)
    code = console.get_by_test_id("participant-code").inner_text()
    assert code == gs.participant_code

    people = [new_page(), new_page(width=390, height=844), new_page()]
    for person in people:
        join(person, base, experiment, code)
    wait_console(console, "() => document.querySelector('[data-ready]').textContent.startsWith('3 of 3 ready')")
    console.screenshot(path=str(artifacts / "demo-console-waiting.png"), full_page=True)
    people[1].screenshot(path=str(artifacts / "demo-phone-waiting.png"), full_page=True)
    people[0].screenshot(path=str(artifacts / "demo-laptop-waiting.png"), full_page=True)

    console.get_by_role("button", name="Start", exact=True).click()
    for step in range(STEPS):
        wait_console(console, "() => document.querySelector('[data-phase]').textContent === 'running' && "
                              f"document.querySelector('[data-step]').textContent === '{step}'")  # fmt: skip
        shared = console_state(console)
        if step == 0:  # the demo's steps have no timer: no Timer row, no Extend to press
            assert console.locator("[data-flow-timer]").is_hidden()
            assert console.get_by_role("button", name="Extend").is_hidden()
        for i, person in enumerate(people):
            device = "phone" if i == 1 else "laptop"
            colour_shot = artifacts / f"demo-{device}-colour.png" if step == 1 else None
            on_trial(person, step, shared["hex"], screenshot=colour_shot)
            if step == 1 and i == RELOADER:
                person.reload()  # mid-step: the same step again, nothing stored yet
                on_trial(person, step, shared["hex"])
            if step == 1:
                person.screenshot(path=str(artifacts / f"demo-{device}-slider.png"), full_page=True)
            answer(person, rating(i, step), last=step == STEPS - 1)
        if step < STEPS - 1:
            wait_console(console, "() => !document.querySelector('[data-cmd=advance]').disabled")
            if step == 1:
                console.locator("[data-participants] tr").first.get_by_role("button", name="Answers").click()
                row = console.locator("[data-answers-for]").first
                row.get_by_text(f"Step 1: warmth = {rating(0, 1)}").wait_for()
                console.screenshot(path=str(artifacts / "demo-console-running.png"), full_page=True)
            console.get_by_role("button", name="Advance", exact=True).click()
    console.locator("[data-step-log] li", has_text="advanced · step 2").wait_for()  # the live step log
    # Everyone is on the end page: the console says so and offers End, not Advance or Kick.
    wait_console(console, "() => document.querySelector('[data-ready]').textContent === 'All 3 finished.'")
    assert console.locator("[data-all-finished]").is_visible()
    assert console.locator("[data-phase]").inner_text() == "all finished"  # the badge agrees with the line
    assert console.get_by_role("button", name="Advance", exact=True).is_hidden()
    assert console.get_by_role("button", name="Kick").count() == 0
    assert console.get_by_role("button", name="End", exact=True).is_enabled()
    assert "behind" not in console.locator("[data-participants]").inner_text()
    console.screenshot(path=str(artifacts / "demo-console-all-finished.png"), full_page=True)
    console.get_by_role("button", name="End", exact=True).click()
    console.locator("[data-phase]", has_text="ended").wait_for()
    assert console.locator("[data-ready]").inner_text() == "The session has ended."  # no stale notices
    people[1].screenshot(path=str(artifacts / "demo-phone-end.png"), full_page=True)
    console.screenshot(path=str(artifacts / "demo-console-ended.png"), full_page=True)

    steps = {row.step: row for row in StepLog.objects.filter(group_session=gs, action__in=["started", "advanced"])}
    assert sorted(steps) == [0, 1, 2]
    memberships = list(Membership.objects.filter(group_session=gs).order_by("joined", "id"))
    assert len(memberships) == 3
    for i, membership in enumerate(memberships):
        clock = Session.objects.get(pk=membership.session_id).state.get("clock")  # estimated over the socket
        assert clock and clock["via"] == "socket" and abs(clock["offset_ms"]) < 5_000 and clock["rtt_ms"] < 5_000
        assert Session.objects.get(pk=membership.session_id).clock_offset_ms == clock["offset_ms"]
        rows = Response.objects.filter(session=membership.session_id, item="warmth").order_by("step")
        assert [(r.step, r.value) for r in rows] == [(s, rating(i, s)) for s in range(STEPS)], i
        for row in rows:
            assert row.group_session_id == gs.pk
            assert row.shared_params == steps[row.step].shared_params
            assert row.shared_params["colour"] and row.shared_params["hex"].startswith("#")
    assert len({steps[s].shared_params["colour"] for s in steps}) == STEPS  # a new colour every step
    gs.refresh_from_db()
    assert gs.phase == "ended" and gs.context["summary"]["ratings"] == 9
    assert gs.context["step_means"] == {"0": 3.0, "1": 4.0, "2": 5.0}  # on_all_responded saw every rating
