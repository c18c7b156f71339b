"""A participant who closes the tab during a step and comes back after the experimenter's
"Advance anyway" is on the group's step, and the round label says the group's round."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from groups import services
from runner.models import Response
from tests.e2e.pages import attach_console
from tests.runner.builders import build_lockstep_experiment

pytestmark = [pytest.mark.browser]
PASSWORD = "pw-rejoin-123456"


def _console(page, base, gs):
    attach_console(page, base, gs, username="lead", password=PASSWORD)
    page.on("dialog", lambda dialog: dialog.accept())


def _join(page, base, experiment, gs):
    page.goto(f"{base}/run/{experiment.pk}/start/")
    page.fill("#id_code", gs.participant_code.lower())
    page.get_by_role("button", name="Join").click()
    page.get_by_text("Waiting for the experimenter to start").wait_for()


def _answer(page, step: int, round_: int):
    page.locator(f"input[name=q-_group_step][value='{step}']").wait_for(state="attached")
    page.get_by_text(f"Round {round_} of 3").wait_for()
    page.get_by_label("Yes").check()
    page.get_by_role("button", name="Next").click()


def test_rejoin_after_advance_anyway(daphne_server, new_page, transactional_db, artifacts):
    get_user_model().objects.create_user("lead", password=PASSWORD, is_staff=True)
    experiment = build_lockstep_experiment(3, title="Rejoin")
    gs = services.start_group_session(experiment=experiment, size=2)
    base = daphne_server.url
    console = new_page()
    _console(console, base, gs)
    ann, bob = new_page(), new_page(width=390, height=844)
    for person in (ann, bob):
        _join(person, base, experiment, gs)
    console.get_by_role("button", name="Start", exact=True).click()
    for person in (ann, bob):
        _answer(person, 0, 1)
    console.wait_for_function("() => !document.querySelector('[data-cmd=advance]').disabled")
    console.get_by_role("button", name="Advance", exact=True).click()

    bob.get_by_text("Round 2 of 3").wait_for()
    context = bob.context
    bob.close()  # the tab closes during step 1
    _answer(ann, 1, 2)
    console.get_by_role("button", name="Advance anyway…").click()
    console.locator("[data-step]", has_text="2").wait_for()

    bob = context.new_page()  # reopened: the same browser, its run cookie
    bob.goto(f"{base}/run/{experiment.pk}/")
    bob.get_by_text("Round 3 of 3").wait_for()
    assert bob.locator("input[name=q-_group_step]").get_attribute("value") == "2"
    bob.screenshot(path=str(artifacts / "rejoin-round-3.png"), full_page=True)
    _answer(bob, 2, 3)
    _answer(ann, 2, 3)
    for person in (ann, bob):
        person.get_by_text("Thank you").first.wait_for()  # the loop of three ends for both
    rows = Response.objects.filter(group_session=gs, item="warm").order_by("session_id", "step")
    visits = {}
    for row in rows:
        visits.setdefault(row.session_id, []).append((row.step, row.visit))
    assert sorted(visits.values()) == [[(0, 1), (1, 2), (2, 3)], [(0, 1), (2, 3)]]
    # the server records the closed sockets before the test's database is emptied
    for person in (ann, bob):
        person.close()
    console.wait_for_function("() => !document.querySelector('[data-participants]').textContent.includes('● online')")
