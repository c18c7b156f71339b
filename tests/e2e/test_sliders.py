"""Sliders in Chromium: an untouched slider has no answer. A required one must be moved
(the page says so and nothing is stored); an optional one left alone stores nothing;
a moved one stores what the participant set."""

from __future__ import annotations

import pytest

from runner.models import Response, Session
from tests.factories import TicketFactory
from tests.runner.builders import build_experiment

pytestmark = [pytest.mark.browser]


def _experiment():
    return build_experiment(
        [
            {
                "name": "sliders",
                "questions": [
                    {"key": "mood", "widget": "slider", "df_type": "int", "range": {"min": 1, "max": 7, "step": 1}},
                    {
                        "key": "energy",
                        "widget": "slider",
                        "df_type": "int",
                        "range": {"min": 0, "max": 100, "step": 1},
                        "required": False,
                    },
                ],
            },
            {"name": "end", "handler": "form_end_session", "header": "<p>Done.</p>"},
        ],
        slug="sliders",
        title="Sliders",
    )


def test_sliders_need_a_touch(transactional_db, daphne_server, page, artifacts):
    experiment = _experiment()
    ticket = TicketFactory(experiment=experiment)
    page.goto(f"{daphne_server.url}/run/{experiment.pk}/start/?tc={ticket.code}")
    mood = page.locator("input[name='q-mood']")
    mood.wait_for()
    assert page.locator("output[for='id_q-mood']").inner_text() == "not set"
    assert "slider-untouched" in mood.get_attribute("class")
    page.screenshot(path=str(artifacts / "sliders-untouched.png"), full_page=True)

    # Submitted untouched: the required slider is refused, nothing is stored.
    page.get_by_role("button", name="Next").click()
    page.wait_for_selector("text=please move the slider")
    session = Session.objects.get(experiment=experiment)
    assert not Response.objects.filter(session=session).exists()
    page.screenshot(path=str(artifacts / "sliders-refused.png"), full_page=True)

    page.locator("input[name='q-mood']").fill("6")
    assert page.locator("output[for='id_q-mood']").inner_text() == "6"
    page.get_by_role("button", name="Next").click()
    page.wait_for_selector("[data-end-page]")
    answers = {r.item: r.value for r in Response.objects.filter(session=session)}
    assert answers == {"mood": 6, "energy": None}
