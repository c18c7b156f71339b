"""The editor (Django admin at /editor/): pages, tickets view, copy action, definition download/upload."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from runner.definitions import dump_experiment, load_file
from runner.models import DataFormat, Experiment, ExperimentXForm, Form, Question, Session, Subject, Ticket
from tests.factories import ResponseFactory, SessionFactory, SubjectFactory, TicketFactory
from tests.runner.definition_helpers import BAD_DIR, DEMO_DIR, GOOD_DIR, table_counts

pytestmark = pytest.mark.django_db
PROBE = GOOD_DIR / "probe.yaml"


@pytest.fixture
def probe():
    return load_file(path=PROBE).experiment


@pytest.fixture
def data(probe):
    """A little of everything, so that every list column renders."""
    load_file(path=DEMO_DIR / "colors.yaml")
    subject = SubjectFactory(email="alice@example.org", name_first="Alice", name_last="Liddell")
    session = SessionFactory(experiment=probe, subject=subject)
    ResponseFactory(
        session=session,
        form=Form.objects.get(owner=probe, name="trial"),
        question=Question.objects.get(owner=probe, key="rating"),
        item="rating",
        value=6,
    )
    return {"experiment": probe, "subject": subject, "session": session}


def runner_models():
    return sorted((m for m in admin.site._registry if m._meta.app_label == "runner"), key=lambda m: m._meta.model_name)


def test_every_runner_page_loads(admin_client, data):
    assert admin_client.get("/editor/").status_code == 200
    for model in runner_models():
        name = model._meta.model_name
        changelist = admin_client.get(reverse(f"admin:runner_{name}_changelist"))
        assert changelist.status_code == 200, name
        obj = model.objects.first()
        if obj is not None:
            assert admin_client.get(reverse(f"admin:runner_{name}_change", args=[obj.pk])).status_code == 200, name
        if admin.site._registry[model].has_add_permission(changelist.wsgi_request):
            assert admin_client.get(reverse(f"admin:runner_{name}_add")).status_code == 200, name
    assert {m._meta.model_name for m in runner_models()} >= {
        "experiment",
        "form",
        "question",
        "dataformat",
        "ticket",
        "subject",
        "session",
        "response",
        "stimulus",
        "attribute",
        "study",
    }


def test_editor_needs_a_login(client, probe):
    response = client.get(reverse("admin:runner_experiment_tickets", args=[probe.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert Ticket.objects.count() == 0


def test_experiment_list_shows_session_counts_and_search(admin_client, data):
    SessionFactory(experiment=data["experiment"], end=data["experiment"].created)
    page = admin_client.get(reverse("admin:runner_experiment_changelist")).content.decode()
    assert re.search(r'field-n_sessions">2<', page) and re.search(r'field-n_finished">1<', page)
    found = admin_client.get(reverse("admin:runner_experiment_changelist"), {"q": "colour"}).content.decode()
    assert "demo-colors" in found and ">probe<" not in found


def test_change_page_links_to_tickets_and_definition(admin_client, probe):
    page = admin_client.get(reverse("admin:runner_experiment_change", args=[probe.pk])).content.decode()
    assert reverse("admin:runner_experiment_tickets", args=[probe.pk]) in page
    assert reverse("admin:runner_experiment_definition", args=[probe.pk]) in page
    assert 'name="experiment_forms-TOTAL_FORMS" value="3"' in page


def test_create_tickets_view_creates_and_shows_run_urls(admin_client, admin_user, probe):
    url = reverse("admin:runner_experiment_tickets", args=[probe.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"type": "user", "count": "3", "label": "lab PCs"})
    assert response.status_code == 200
    tickets = list(Ticket.objects.filter(experiment=probe))
    assert len(tickets) == 3
    assert {(t.type, t.label, t.created_by_id) for t in tickets} == {("user", "lab PCs", admin_user.pk)}
    page = response.content.decode()
    for ticket in tickets:
        assert f"http://testserver/run/{probe.pk}/start/?tc={ticket.code}" in page


def test_create_tickets_view_refuses_bad_input(admin_client, probe):
    url = reverse("admin:runner_experiment_tickets", args=[probe.pk])
    response = admin_client.post(url, {"type": "master", "count": "0"})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    response = admin_client.post(url, {"type": "master", "count": "1", "expires": "2001-01-01T10:00"})
    assert "already in the past" in response.content.decode()
    assert Ticket.objects.count() == 0


def test_download_definition_is_the_dump(admin_client, probe):
    response = admin_client.get(reverse("admin:runner_experiment_definition", args=[probe.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="probe.yaml"'
    assert response.content.decode() == dump_experiment(probe)


def test_load_definition_upload(admin_client, probe):
    url = reverse("admin:runner_experiment_load")
    assert admin_client.get(url).status_code == 200
    before = table_counts()
    bad = (BAD_DIR / "goto_forward.yaml").read_bytes()
    response = admin_client.post(url, {"file": SimpleUploadedFile("goto_forward.yaml", bad)})
    assert response.status_code == 200
    assert "goto_forward.yaml:7: form &#x27;trial&#x27;: goto points forward" in response.content.decode()
    assert table_counts() == before
    good = (DEMO_DIR / "solo.yaml").read_bytes()
    response = admin_client.post(url, {"file": SimpleUploadedFile("solo.yaml", good)})
    solo = Experiment.objects.get(slug="demo-solo")
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:runner_experiment_change", args=[solo.pk]
    )


def test_copy_action_duplicates_owned_forms(admin_client, probe):
    changelist = reverse("admin:runner_experiment_changelist")
    response = admin_client.post(changelist, {"action": "copy_experiments", "_selected_action": [probe.pk]})
    assert response.status_code == 302
    copy = Experiment.objects.get(slug="probe-copy-1")
    assert copy.title == "Probe (copy)"
    original_forms = set(Form.objects.filter(owner=probe).values_list("pk", flat=True))
    copy_forms = set(ExperimentXForm.objects.filter(experiment=copy).values_list("form", flat=True))
    assert copy_forms and not copy_forms & original_forms
    assert set(Form.objects.filter(pk__in=copy_forms).values_list("owner", flat=True)) == {copy.pk}
    assert Question.objects.filter(owner=copy).count() == Question.objects.filter(owner=probe).count()
    body = lambda e: dump_experiment(e).split("forms:", 1)[1]  # noqa: E731
    assert body(copy) == body(probe)
    admin_client.post(changelist, {"action": "copy_experiments", "_selected_action": [probe.pk]})
    assert Experiment.objects.filter(slug="probe-copy-2").exists()


def test_inline_refuses_unresolvable_callbacks_and_overlapping_loops(admin_client, probe):
    url = reverse("admin:runner_experiment_change", args=[probe.pk])
    before = dump_experiment(probe)
    data = _change_data(probe, stimulus_script={1: "demo.solo.missing"})
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "has no attribute" in response.content.decode()
    data = _change_data(probe, repeat={2: 2, 3: 2}, goto={2: 1, 3: 2}, handler={3: "form_generic"})
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "nested or overlapping loops" in response.content.decode()
    probe.refresh_from_db()
    assert dump_experiment(probe) == before
    response = admin_client.post(url, _change_data(probe, stimulus_script={2: "demo.solo.trial_timeline"}))
    assert response.status_code == 302
    assert ExperimentXForm.objects.get(experiment=probe, order=2).stimulus_script == "demo.solo.trial_timeline"


def test_experiment_without_sessions_can_be_deleted(admin_client, probe):
    url = reverse("admin:runner_experiment_delete", args=[probe.pk])
    assert "Are you sure" in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Experiment.objects.filter(pk=probe.pk).exists()
    assert not Form.objects.filter(owner_id=probe.pk).exists()


def test_experiment_with_sessions_cannot_be_deleted(admin_client, data):
    experiment = data["experiment"]
    url = reverse("admin:runner_experiment_delete", args=[experiment.pk])
    page = admin_client.get(url).content.decode()
    assert "Cannot delete experiment" in page
    admin_client.post(url, {"post": "yes"})
    assert Experiment.objects.filter(pk=experiment.pk).exists()


def test_personal_fields_never_appear_in_lists(admin_client, data):
    for name in ("subject", "session", "response"):
        page = admin_client.get(reverse(f"admin:runner_{name}_changelist")).content.decode()
        assert "alice@example.org" not in page and "Liddell" not in page, name


def test_session_exclusion_is_editable_and_run_token_hidden(admin_client, data):
    session = data["session"]
    url = reverse("admin:runner_session_change", args=[session.pk])
    assert session.run_token not in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"excluded": "on", "exclusion_reason": "fell asleep"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.excluded and session.exclusion_reason == "fell asleep"
    assert Session.objects.get(pk=session.pk).experiment_id == data["experiment"].pk


def test_responses_are_read_only(admin_client, data):
    response = data["session"].responses.get()
    url = reverse("admin:runner_response_change", args=[response.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="_save"' not in page
    assert admin_client.post(url, {"value": "1"}).status_code == 403


def test_ticket_list_shows_a_copyable_run_link(admin_client, probe):
    ticket = TicketFactory(experiment=probe)
    page = admin_client.get(reverse("admin:runner_ticket_changelist")).content.decode()
    assert f"http://testserver/run/{probe.pk}/start/?tc={ticket.code}" in page
    assert "navigator.clipboard.writeText" in page


def test_duplicate_data_format_is_refused_in_the_editor(admin_client, probe):
    existing = DataFormat.objects.filter(df_type="enum").first()
    response = admin_client.post(
        reverse("admin:runner_dataformat_add"),
        {"df_type": "enum", "choices": json.dumps(existing.choices), "range": "{}"},
    )
    assert response.status_code == 200 and "already exists" in response.content.decode()


def test_subjects_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(reverse("admin:runner_subject_add")).status_code == 403
    assert Subject.objects.count() == 0


def _change_data(experiment, **columns) -> dict:
    """POST data for the experiment change page; ``columns`` override link fields by order."""
    data = {
        "slug": experiment.slug,
        "title": experiment.title,
        "description": experiment.description,
        "is_active": "on",
        "params": json.dumps(experiment.params),
        "data_policy": json.dumps(experiment.data_policy),
        "experiment_stimuli-TOTAL_FORMS": "0",
        "experiment_stimuli-INITIAL_FORMS": "0",
    }
    links = list(experiment.experiment_forms.order_by("order"))
    data["experiment_forms-TOTAL_FORMS"] = str(len(links))
    data["experiment_forms-INITIAL_FORMS"] = str(len(links))
    for i, link in enumerate(links):
        row = {
            "id": link.pk,
            "experiment": experiment.pk,
            "order": link.order,
            "form": link.form_id,
            "handler": link.handler,
            "condition_script": link.condition_script,
            "stimulus_script": link.stimulus_script,
            "repeat": link.repeat if link.repeat is not None else "",
            "goto": link.goto if link.goto is not None else "",
            "break_loop_button_text": link.break_loop_button_text,
            "continue_button_text": link.continue_button_text,
            "jspsych_width": link.jspsych_width,
        }
        for column, values in columns.items():
            if link.order in values:
                row[column] = values[link.order]
        data.update({f"experiment_forms-{i}-{key}": value for key, value in row.items()})
    return data


def test_responses_read_as_answers_not_python(admin_client, data):
    session, trial = data["session"], Form.objects.get(owner=data["experiment"], name="trial")
    ResponseFactory(session=session, form=trial, item="instruments", value=["Piano", "Guitar"], visit=2)
    long_text = "word " * 400
    essay = ResponseFactory(session=session, form=trial, item="essay", value=long_text, visit=3)
    listing = admin_client.get(reverse("admin:runner_response_changelist")).content.decode()
    assert "Piano, Guitar" in listing and "[&#x27;Piano&#x27;" not in listing
    detail = admin_client.get(reverse("admin:runner_response_change", args=[essay.pk])).content.decode()
    assert "overflow-wrap: anywhere" in detail and long_text.strip() in detail


def test_inline_page_width_is_checked_and_saved(admin_client, probe):
    url = reverse("admin:runner_experiment_change", args=[probe.pk])
    before = dump_experiment(probe)
    response = admin_client.post(url, _change_data(probe, jspsych_width={1: "huge"}))
    assert response.status_code == 200
    assert "jspsych_width must be normal, wide or a number of pixels from 320 to 2400" in response.content.decode()
    probe.refresh_from_db()
    assert dump_experiment(probe) == before
    response = admin_client.post(url, _change_data(probe, jspsych_width={1: "wide", 2: "960"}))
    assert response.status_code == 302
    links = probe.experiment_forms.order_by("order")
    assert [link.jspsych_width for link in links[:3]] == ["wide", "960", "normal"]
    assert "jspsych_width: 960\n" in dump_experiment(probe)
