"""The survey builder's server side: saving is loading (the loader's validation, one
transaction), the preview draws the participant's form, the editor refuses what the loader
refuses, and only editors who may change an experiment reach it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.urls import reverse

from runner.definitions import dump_experiment, load_file, load_text
from runner.models import DataFormat, Experiment, Question, Session, Ticket

from .definition_helpers import missing_expectations

pytestmark = pytest.mark.django_db
HERE = Path(__file__).resolve().parent
BAD = sorted((HERE / "bad_definitions").glob("*.yaml"))
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@pytest.fixture
def editor(client):
    user = get_user_model().objects.create_superuser("builder", password="pw-builder")
    client.force_login(user)
    return client


@pytest.fixture
def probe():
    return load_file(path=HERE / "good_definitions" / "probe.yaml").experiment


def _save(client, experiment, definition, **extra):
    url = reverse("admin:runner_experiment_builder_save", args=[experiment.pk])
    body = definition if isinstance(definition, str) else json.dumps({"definition": definition, **extra})
    return client.post(url, body, content_type="application/json")


def test_builder_page_shows_the_definition(editor, probe):
    page = editor.get(reverse("admin:runner_experiment_builder", args=[probe.pk])).content.decode()
    assert 'id="builder-definition"' in page and "builder.js" in page and probe.title in page


def test_save_is_a_load(editor, probe):
    definition = yaml.safe_load(dump_experiment(probe))
    definition["forms"][0]["questions"].append(
        {"key": "colour", "text": "Favourite colour?", "type": "radiogroup", "choices": ["Red", "Blue"]}
    )
    response = _save(editor, probe, definition)
    assert response.status_code == 200 and response.json()["status"] == "updated", response.json()
    assert Question.objects.get(owner=probe, key="colour").data_format.choices == ["Red", "Blue"]
    # what the builder saved dumps to a file that loads again, unchanged
    assert load_text(text=dump_experiment(probe)).status == "unchanged"


def test_slider_without_range_is_refused_with_the_loaders_message(editor, probe):
    definition = yaml.safe_load(dump_experiment(probe))
    definition["forms"][0]["questions"].append({"key": "mood", "text": "Mood", "type": "slider"})
    before = dump_experiment(probe)
    response = _save(editor, probe, definition)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e.endswith("question 'mood': a slider needs a range: {min: ..., max: ...}") for e in errors), errors
    assert dump_experiment(Experiment.objects.get(pk=probe.pk)) == before


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_builder_refuses_every_file_the_loader_refuses(editor, path):
    """Each bad file of the loader's test set, typed into the builder's YAML view, and (where
    it reads as a mapping at all) as the builder's own definition: refused, nothing changed."""
    text = path.read_text()
    try:
        definition = yaml.safe_load(text)
    except yaml.YAMLError:
        definition = None
    slug = definition.get("slug") if isinstance(definition, dict) else None
    if isinstance(slug, str) and SLUG.match(slug) and len(slug) <= 50:
        experiment, _ = Experiment.objects.get_or_create(slug=slug, defaults={"title": "Before"})
    else:
        experiment = Experiment.objects.create(slug="builder-target", title="Before")
    before = (Experiment.objects.count(), Question.objects.count(), DataFormat.objects.count())
    as_text = _save(editor, experiment, json.dumps({"yaml": text}))
    assert as_text.status_code in (400, 422) and as_text.json()["errors"], as_text.json()
    if as_text.status_code == 422:  # checked by the loader: its own messages, by line
        lines = [e.replace("builder.yaml:", f"{path}:", 1) for e in as_text.json()["errors"]]
        assert missing_expectations(path, lines) == [], lines
    else:  # refused before the loader: the slug of another experiment
        assert "slug cannot change" in as_text.json()["errors"][0]
        assert (experiment.slug, path.stem) == ("builder-target", "bad_slug")
    if isinstance(definition, dict) and path.stem != "duplicate_yaml_key":  # a mapping cannot repeat a key
        as_mapping = _save(editor, experiment, definition)
        assert as_mapping.status_code in (400, 422) and as_mapping.json()["errors"], as_mapping.json()
    assert (Experiment.objects.count(), Question.objects.count(), DataFormat.objects.count()) == before


def test_a_repeated_key_is_refused(editor, probe):
    body = '{"definition": {"slug": "probe", "title": "A", "title": "B", "forms": []}}'
    response = _save(editor, probe, body)
    assert response.status_code == 400 and "given twice" in response.json()["errors"][0]


def test_preview_draws_the_participants_form(editor, probe):
    url = reverse("admin:runner_experiment_builder_preview", args=[probe.pk])
    form = {"name": "p", "title": "About you", "questions": [
        {"key": "hand", "text": "Which hand?", "type": "radiogroup", "choices": ["Left", "Right"], "required": True},
        {"key": "mood", "text": "Mood", "type": "slider", "range": {"min": 1, "max": 7}},
        {"key": "half", "text": "Still typing", "type": "radiogroup"},  # no choices yet: left out
    ]}  # fmt: skip
    html = editor.post(url, json.dumps({"form": form}), content_type="application/json").json()["html"]
    assert "About you" in html and 'value="Left"' in html and 'type="range"' in html and "not set" in html
    assert "Still typing" not in html


def test_new_survey_opens_the_builder(editor):
    response = editor.post(reverse("admin:runner_experiment_new_survey"), {"title": "Mood", "slug": "mood-2027"})
    experiment = Experiment.objects.get(slug="mood-2027")
    assert response["Location"] == reverse("admin:runner_experiment_builder", args=[experiment.pk])
    assert [f["handler"] for f in yaml.safe_load(dump_experiment(experiment))["forms"]] == [
        "form_generic", "form_end_session"
    ]  # fmt: skip
    again = editor.post(reverse("admin:runner_experiment_new_survey"), {"title": "Other", "slug": "mood-2027"})
    assert again.status_code == 200 and "mood-2027" in again.content.decode()


def test_preview_run_starts_a_preview_session(editor, probe):
    response = editor.post(reverse("admin:runner_experiment_preview_run", args=[probe.pk]))
    ticket = Ticket.objects.get(experiment=probe, label="preview (survey builder)")
    assert response.status_code == 302 and response["Location"].endswith(f"/run/{probe.pk}/start/?tc={ticket.code}")
    editor.get(response["Location"])
    assert Session.objects.get(experiment=probe).is_preview is True


def test_builder_needs_the_change_permission(client, probe):
    url = reverse("admin:runner_experiment_builder", args=[probe.pk])
    assert client.get(url).status_code == 302  # to the login
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    assert _save(client, probe, {"slug": probe.slug}).status_code == 403
    assert client.post(reverse("admin:runner_experiment_preview_run", args=[probe.pk])).status_code == 403


def test_builder_refuses_another_slug_and_bad_json(editor, probe):
    response = _save(editor, probe, {"slug": "someone-else", "title": "x", "forms": []})
    assert response.status_code == 400 and "cannot change" in response.json()["errors"][0]
    assert _save(editor, probe, "{not json").status_code == 400
    assert _save(editor, probe, "[1, 2]").status_code == 400


@pytest.mark.parametrize(
    "widget, df_type, choices, range_, problem",
    [
        ("slider", "string", [], {}, "a slider question stores numbers"),
        ("radiogroup", "int", [], {"min": 1, "max": 7}, "a radiogroup question needs a data format of type enum"),
        ("slider", "int", [], {}, "a slider needs a range"),
        ("text", "enum", ["a", "b"], {}, "a text question needs a data format of type string"),
    ],
)
def test_question_editor_refuses_what_the_loader_refuses(editor, probe, widget, df_type, choices, range_, problem):
    fmt = DataFormat.objects.create(df_type=df_type, choices=choices, range=range_)
    question = Question.objects.filter(owner=probe).first()
    url = reverse("admin:runner_question_change", args=[question.pk])
    before = (question.widget, question.data_format_id)
    response = editor.post(url, {"key": question.key, "text": question.text, "widget": widget, "data_format": fmt.pk})
    assert response.status_code == 200 and problem in response.content.decode()
    question.refresh_from_db()
    assert (question.widget, question.data_format_id) == before
    assert load_text(text=dump_experiment(probe)).status == "unchanged"  # still a file that loads


def test_question_editor_accepts_a_matching_format(editor, probe):
    question = Question.objects.filter(owner=probe).first()
    fmt = DataFormat.objects.create(df_type="int", choices=[], range={"min": 0, "max": 10})
    url = reverse("admin:runner_question_change", args=[question.pk])
    response = editor.post(url, {"key": question.key, "text": question.text, "widget": "slider", "data_format": fmt.pk})
    assert response.status_code == 302
    assert load_text(text=dump_experiment(probe)).status == "unchanged"
