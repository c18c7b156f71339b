"""A participant completes the solo demo in Chromium: consent, every widget type,
a jsPsych html-keyboard-response trial (v6 plugin name) answered with a key, a loop
of three, the end page. Screenshots on a laptop and a 390px phone."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.models import Experiment, Response, Session
from tests.factories import TicketFactory

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "experiments" / "demo" / "solo.yaml"

pytestmark = [pytest.mark.browser]


def _solo_experiment() -> Experiment:
    """The demo from its YAML through the loader when present, else the same with factories."""
    if DEMO.exists():
        from django.core.management import call_command

        call_command("load_experiment", str(DEMO), verbosity=0)
        return Experiment.objects.get(slug="demo-solo")
    from tests.runner.builders import build_experiment

    return build_experiment(
        [
            {
                "name": "consent",
                "handler": "form_consent",
                "questions": [{"key": "agree", "choices": ["I agree", "I do not agree"]}],
            },
            {
                "name": "survey",
                "questions": [
                    {"key": "hand", "widget": "radiogroup", "choices": ["Left", "Right", "Both"]},
                    {"key": "instruments", "widget": "checkbox", "choices": ["Piano", "Guitar"], "required": False},
                    {"key": "listening", "widget": "menu", "choices": ["Headphones", "Speakers"]},
                    {"key": "favourite_genre", "widget": "text", "df_type": "string", "required": False},
                    {"key": "comments", "widget": "textarea", "df_type": "text", "required": False},
                    {"key": "training_years", "widget": "numeric", "df_type": "int", "range": {"min": 0, "max": 80}},
                    {
                        "key": "alertness",
                        "widget": "slider",
                        "df_type": "int",
                        "range": {"min": 1, "max": 10, "step": 1},
                    },
                ],
            },
            {
                "name": "word-trial",
                "stimulus_script": "demo.solo.trial_timeline",
                "repeat": 3,
                "goto": 3,
                "break_loop_button": True,
                "questions": [
                    {
                        "key": "confidence",
                        "widget": "slider",
                        "df_type": "int",
                        "range": {"min": 1, "max": 5, "step": 1},
                    }
                ],
            },
            {"name": "end", "handler": "form_end_session", "header": "<p>Thank you for trying the demo.</p>"},
        ],
        slug="demo-solo",
        title="Demo - solo survey and keyboard trials",
    )


def _consent(page):
    page.get_by_label("I agree", exact=True).check()
    page.get_by_role("button", name="Next").click()


def _survey(page):
    page.get_by_label("Right", exact=True).check()
    page.get_by_label("Piano", exact=True).check()
    page.locator("select[name='q-listening']").select_option("Headphones")
    page.locator("input[name='q-favourite_genre']").fill("jazz")
    page.locator("textarea[name='q-comments']").fill("Nothing to add.")
    page.locator("input[name='q-training_years']").fill("5")
    page.locator("input[name='q-alertness']").fill("7")
    page.get_by_role("button", name="Next").click()


def _trial(page, visit: int, *, screenshot: Path | None = None):
    page.wait_for_selector("#jspsych-host .jspsych-content", timeout=15_000)
    assert page.locator("#questions").is_hidden()  # questions only after the timeline
    page.wait_for_selector(f"text=Round {visit} of 3")
    if screenshot:
        page.screenshot(path=str(screenshot), full_page=True)
    page.keyboard.press("f")
    page.wait_for_selector("#questions", state="visible")
    page.locator("input[name='q-confidence']").fill(str(visit + 1))
    page.get_by_role("button", name="Next").click()


def _run_through(page, url: str, *, shots: Path, tag: str) -> Session:
    page.goto(url)
    page.wait_for_selector("text=Page 1 of 4")
    page.screenshot(path=str(shots / f"{tag}-1-consent.png"), full_page=True)
    _consent(page)
    page.wait_for_selector("text=Page 2 of 4")
    page.screenshot(path=str(shots / f"{tag}-2-survey.png"), full_page=True)
    _survey(page)
    for visit in (1, 2, 3):
        _trial(page, visit, screenshot=shots / f"{tag}-3-trial.png" if visit == 1 else None)
    page.wait_for_selector("[data-end-page]")
    page.screenshot(path=str(shots / f"{tag}-4-end.png"), full_page=True)
    return Session.objects.order_by("-pk").first()


def test_participant_completes_solo_demo(transactional_db, daphne_server, new_page, artifacts):
    experiment = _solo_experiment()
    ticket = TicketFactory(experiment=experiment)
    url = f"{daphne_server.url}/run/{experiment.pk}/start/?tc={ticket.code}"

    laptop = new_page(1280, 800)
    session = _run_through(laptop, url, shots=artifacts, tag="laptop")
    assert laptop.get_by_text("Thank you for trying the demo").is_visible()

    session.refresh_from_db()
    assert session.end is not None and session.timezone  # Intl time zone from the browser
    rows = Response.objects.filter(session=session)
    answers = {r.item: r.value for r in rows.filter(form_order__lte=2)}
    assert answers["agree"] == "I agree"
    assert answers["hand"] == "Right" and answers["instruments"] == ["Piano"]
    assert answers["listening"] == "Headphones" and answers["favourite_genre"] == "jazz"
    assert answers["training_years"] == 5 and answers["alertness"] == 7
    trials = rows.filter(item__startswith="jspsych:").order_by("visit")
    assert [t.visit for t in trials] == [1, 2, 3]
    for t in trials:
        assert t.value == "f" and t.jspsych_data["response"] == "f" and isinstance(t.jspsych_data["rt"], int | float)
        assert t.jspsych_data["trial_type"] == "html-keyboard-response"
    confidence = rows.filter(item="confidence").order_by("visit")
    assert [(c.visit, c.value) for c in confidence] == [(1, 2), (2, 3), (3, 4)]
    assert all(r.served_at and r.submitted_at >= r.served_at and r.client_time_ms for r in rows)

    # Reload and Back after the end: still the end page, nothing stored twice.
    count = rows.count()
    laptop.go_back()
    laptop.reload()
    laptop.wait_for_selector("[data-end-page]")
    assert Response.objects.filter(session=session).count() == count

    phone = new_page(390, 844, is_mobile=True, has_touch=True)
    phone_session = _run_through(phone, url, shots=artifacts, tag="phone")
    assert phone_session.pk != session.pk and phone_session.end is not None
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"horizontal scrolling on a phone ({width}px)"


def test_error_pages_on_a_phone(transactional_db, daphne_server, new_page, artifacts):
    experiment = _solo_experiment()
    phone = new_page(390, 844, is_mobile=True, has_touch=True)
    response = phone.goto(f"{daphne_server.url}/run/{experiment.pk}/start/?tc=not-a-real-ticket")
    assert response.status == 404
    assert phone.get_by_role("heading", name="Link not recognised").is_visible()
    phone.screenshot(path=str(artifacts / "phone-error-ticket.png"), full_page=True)
    response = phone.goto(f"{daphne_server.url}/run/{experiment.pk}/")
    assert response.status == 403 and phone.get_by_text("Session not found").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
