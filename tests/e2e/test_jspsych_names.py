"""jsPsych 8 in Chromium: v6 file-style and v8 class-style plugin names, a nested timeline,
and a jsPsych-only form that submits itself when the timeline ends."""

import pytest

from runner.models import Response
from tests.factories import TicketFactory
from tests.runner.builders import CB, build_experiment

pytestmark = [pytest.mark.browser]


def test_jspsych_only_form_with_mixed_plugin_names(transactional_db, daphne_server, page):
    experiment = build_experiment(
        [
            {"name": "task", "handler": "form_generic", "stimulus_script": f"{CB}.mixed_names"},
            {"name": "end", "handler": "form_end_session"},
        ]
    )
    ticket = TicketFactory(experiment=experiment)
    page.goto(f"{daphne_server.url}/run/{experiment.pk}/start/?tc={ticket.code}")
    page.wait_for_selector("#t1")
    page.keyboard.press("a")
    page.wait_for_selector("#t2")
    page.get_by_role("button", name="Go on").click()
    page.wait_for_selector("[data-end-page]")
    rows = list(Response.objects.filter(experiment=experiment).order_by("trial_index"))
    assert [r.item for r in rows] == ["jspsych:0", "jspsych:1"]
    assert rows[0].value == "a" and rows[0].jspsych_data["trial_type"] == "html-keyboard-response"
    assert rows[1].value == 0 and rows[1].jspsych_data["trial_type"] == "html-button-response"
