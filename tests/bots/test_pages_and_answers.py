"""What a bot reads from a page and what it answers: every widget type within its
rendered limits (the real run form, rendered by the runner), the jsPsych helper."""

from __future__ import annotations

import random

import pytest

from bots.answers import default_answers, jspsych_trials, number_in
from bots.pages import Field, parse
from bots.script import ExpectationFailed, Script, expect, screen_for
from runner.definitions.loader import load_file

DEMO_SOLO = "experiments/demo/solo.yaml"


@pytest.fixture
def survey_page(db, client):
    from runner.models import Ticket
    from tests.factories import TicketFactory

    exp = load_file(path=DEMO_SOLO).experiment
    ticket = TicketFactory(experiment=exp, type=Ticket.Type.MASTER)
    client.get(f"/run/{exp.pk}/start/", {"tc": ticket.code})
    consent = parse(200, client.get(f"/run/{exp.pk}/").content.decode())
    fields = [(k, v) for k, v in consent.hidden.items()] + [("q-agree", "I agree"), ("_action", "next")]
    client.post(f"/run/{exp.pk}/", dict(fields))
    return parse(200, client.get(f"/run/{exp.pk}/").content.decode()), consent


def test_the_rendered_survey_is_read_with_every_widget(survey_page):
    page, consent = survey_page
    assert (consent.form_name, consent.handler) == ("consent", "form_consent")
    assert page.kind == "form" and page.form_name == "survey" and page.order_visit == (2, 1)
    assert {"csrfmiddlewaretoken", "_order", "_visit", "_nonce"} <= set(page.hidden)
    kinds = {f.key: f.kind for f in page.fields.values()}
    assert kinds == {"hand": "radio", "instruments": "checkbox", "listening": "select", "favourite_genre": "text",
                     "comments": "textarea", "training_years": "number", "alertness": "range"}  # fmt: skip
    f = {f.key: f for f in page.fields.values()}
    assert f["hand"].choices == ["Left", "Right", "Both"] and f["instruments"].multiple
    assert (f["alertness"].min, f["alertness"].max, f["alertness"].step) == (1, 10, "1")
    assert f["listening"].choices == ["Headphones", "Speakers", "Live", "Rarely"]


def test_default_answers_are_valid_for_the_server(survey_page, client):
    page, _ = survey_page
    answers = default_answers(page, random.Random(3))
    fields = [*page.hidden.items(), *((n, v) for n, vs in answers.items() for v in vs), ("_action", "next")]
    from urllib.parse import urlencode

    response = client.post(page.action, urlencode(fields), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302  # stored and moved on; an invalid answer re-renders with 200


def test_consent_agrees_and_numbers_stay_on_the_grid():
    rng = random.Random(1)
    assert all(float(number_in(Field("x", "range", min=1, max=7, step="1"), rng)) in range(1, 8) for _ in range(50))
    values = {number_in(Field("x", "number", min=0, max=1, step="0.25"), rng) for _ in range(200)}
    assert values <= {"0.00", "0.25", "0.50", "0.75", "1.00"} and len(values) > 2
    page = parse(200, '<form data-run-form data-form="c" data-handler="form_consent" action="/run/1/">'
                      '<input type="radio" name="q-agree" value="Yes"><input type="radio" name="q-agree" value="No">'
                      '</form>')  # fmt: skip
    assert default_answers(page, rng) == {"q-agree": ["Yes"]}


def test_jspsych_helper_walks_the_timeline():
    timeline = [
        {"type": "html-keyboard-response", "stimulus": "hi", "choices": ["f", "j"], "data": {"task": "intro"}},
        {"timeline": [{"type": "jsPsychHtmlButtonResponse", "stimulus": {"timelineVariable": "s"},
                       "choices": ["a", "b", "c"], "data": {"cond": {"timelineVariable": "c"}}}],
         "timeline_variables": [{"s": "one", "c": 1}, {"s": "two", "c": 2}], "repetitions": 2},
        {"type": "survey-text", "questions": [{"name": "age"}, {}]},
    ]  # fmt: skip
    trials = jspsych_trials(timeline, random.Random(5))
    assert [t["trial_type"] for t in trials] == ["html-keyboard-response"] + ["html-button-response"] * 4 + [
        "survey-text"
    ]
    assert [t["trial_index"] for t in trials] == list(range(6))
    assert trials[0]["response"] in ("f", "j") and trials[0]["task"] == "intro"
    assert [t["stimulus"] for t in trials[1:5]] == ["one", "two", "one", "two"]
    assert [t["cond"] for t in trials[1:5]] == [1, 2, 1, 2] and all(t["response"] in (0, 1, 2) for t in trials[1:5])
    assert set(trials[5]["response"]) == {"age", "Q1"}
    assert all(t["rt"] > 0 for t in trials) and trials[-1]["time_elapsed"] > trials[0]["time_elapsed"]


def test_a_script_answer_replaces_the_default_and_expect_names_where(survey_page):
    page, _ = survey_page

    class Module:
        __name__ = "lab.bots"

        @staticmethod
        def survey(screen):
            expect(screen.questions["hand"].choices, "the hand question has choices")
            return {"hand": "Both"}

    screen = screen_for(4, page, shared_params={}, earlier=[], rng=random.Random(1))
    answers = Script(Module).answers(screen)
    assert answers["hand"] == "Both" and "alertness" in answers
    assert screen.label == "bot 4, form 'survey', visit 1"
    Module.survey = staticmethod(lambda screen: expect(False, "no"))
    with pytest.raises(ExpectationFailed, match="no"):
        Script(Module).answers(screen)
