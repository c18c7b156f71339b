"""The survey builder in Chromium, used as a new experimenter would: create a survey,
add one question of every widget (choices one per line, ranges inline), reorder by drag,
see the live preview, have a slider without a range refused with the loader's message,
save, then run it as a test participant from "Preview run" and find the answers stored
in a preview session."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from runner.models import Experiment, Response, Session

pytestmark = [pytest.mark.browser]
PASSWORD = "pw-builder-123456"
WIDGETS = [  # key, type, choices, range
    ("hand", "radiogroup", ["Left", "Right"], None),
    ("pets", "checkbox", ["Cat", "Dog", "Fish"], None),
    ("city", "menu", ["Oslo", "Lima"], None),
    ("name", "text", None, None),
    ("story", "textarea", None, None),
    ("age", "numeric", None, (18, 99)),
    ("mood", "slider", None, (1, 7)),
]


def _add_question(page, card, key, widget, choices, range_):
    card.get_by_role("button", name="Add a question").click()
    row = card.locator(".builder-question").last
    row.locator("[data-key]").fill(key)
    row.locator("[data-key]").dispatch_event("change")
    row = card.locator(".builder-question").last
    row.locator("[data-text]").fill(f"Your {key}?")
    row.locator("[data-type]").select_option(widget)
    row = card.locator(".builder-question").last  # redrawn for the type's own fields
    if choices:
        row.locator("[data-choices]").fill("\n".join(choices))
    if range_:
        row.locator("[data-range=min]").fill(str(range_[0]))
        row.locator("[data-range=max]").fill(str(range_[1]))
        row.locator("[data-range=step]").fill("1")


def test_build_a_survey_and_preview_it(daphne_server, new_page, transactional_db, artifacts):
    get_user_model().objects.create_superuser("maker", password=PASSWORD)
    base = daphne_server.url
    page = new_page(width=1280, height=900)
    page.goto(f"{base}/editor/login/?next=/editor/runner/experiment/new-survey/")
    page.fill("#id_username", "maker")
    page.fill("#id_password", PASSWORD)
    page.locator("input[type=submit]").click()
    page.fill("#id_title", "Everything survey")
    page.fill("#id_slug", "everything")
    page.get_by_role("button", name="Create and open the builder").click()
    page.wait_for_url("**/builder/")
    experiment = Experiment.objects.get(slug="everything")

    card = page.locator(".builder-form").first
    for key, widget, choices, range_ in WIDGETS:
        _add_question(page, card, key, widget, choices, range_)
    frame = page.frame_locator("[data-preview]")
    frame.locator("input[type=range][name='q-mood']").wait_for()  # the live preview follows
    assert frame.locator("label", has_text="Oslo").count() == 0  # a menu: options, not labels
    assert frame.locator("option", has_text="Lima").count() == 1

    # Drag the slider question to the top.
    rows = card.locator(".builder-question")
    page.set_viewport_size({"width": 1280, "height": 2000})  # both ends of the drag on screen
    rows.last.locator(".drag-handle").drag_to(rows.first)
    page.set_viewport_size({"width": 1280, "height": 900})
    assert card.locator(".builder-question").first.get_attribute("data-question") == "mood"

    # A slider without a range: refused with the loader's message, nothing saved.
    mood = card.locator(".builder-question").first
    for bound in ("min", "max", "step"):
        mood.locator(f"[data-range={bound}]").fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator("[data-errors]").get_by_text("a slider needs a range: {min: ..., max: ...}").wait_for()
    page.screenshot(path=str(artifacts / "builder-refused.png"), full_page=True)
    assert not experiment.experiment_forms.first().form.form_questions.exists()

    mood.locator("[data-range=min]").fill("1")
    mood.locator("[data-range=max]").fill("7")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator("[data-save-status]", has_text="Saved (updated)").wait_for()
    assert page.locator("[data-errors]").is_hidden()
    page.screenshot(path=str(artifacts / "builder-saved.png"), full_page=True)
    questions = experiment.experiment_forms.first().form.form_questions.order_by("order")
    keys = list(questions.values_list("question__key", flat=True))
    assert keys == ["mood", "hand", "pets", "city", "name", "story", "age"]

    # Preview run: a new tab runs the saved survey as a test participant.
    with page.expect_popup() as popup:
        page.get_by_test_id("preview-run").click()
    run = popup.value
    run.wait_for_selector("input[name='q-mood']")
    run.locator("input[name='q-mood']").fill("6")
    run.get_by_label("Right", exact=True).check()
    run.get_by_label("Dog", exact=True).check()
    run.locator("select[name='q-city']").select_option("Lima")
    run.locator("input[name='q-name']").fill("Ada")
    run.locator("textarea[name='q-story']").fill("Line one\nline two")
    run.locator("input[name='q-age']").fill("30")
    run.screenshot(path=str(artifacts / "builder-preview-run.png"), full_page=True)
    run.get_by_role("button", name="Next").click()
    run.wait_for_selector("[data-end-page]")
    session = Session.objects.get(experiment=experiment)
    assert session.is_preview and session.end is not None
    answers = {r.item: r.value for r in Response.objects.filter(session=session)}
    assert answers == {"mood": 6, "hand": "Right", "pets": ["Dog"], "city": "Lima", "name": "Ada",
                       "story": "Line one\nline two", "age": 30}  # fmt: skip
