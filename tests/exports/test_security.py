"""Export security: editor permissions on every page, identifying columns, CSV formula
injection, unguessable job folders (docs/security.md)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from exports import records
from exports.models import ExportJob
from runner.models import Response, Session

from .test_views import EXPORT_PERMS, staff_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(settings, tmp_path):
    settings.EXPORTS_IN_BACKGROUND = False
    settings.MEDIA_ROOT = tmp_path


def _pages(slug: str) -> list[tuple[str, str]]:
    return [
        ("get", reverse("exports:index")),
        ("get", reverse("exports:experiment", args=[slug])),
        ("get", reverse("exports:sessions", args=[slug])),
        ("get", reverse("exports:delete_previews", args=[slug])),
        ("post", reverse("exports:delete_previews", args=[slug])),
        ("post", reverse("exports:set_exclusion", args=[slug, 101])),
    ]


def test_staff_without_data_permissions_gets_403_everywhere(client, solo, setup):
    client.force_login(staff_with("view_stimulus", "change_stimulus"))
    for method, url in _pages(solo.slug):
        assert getattr(client, method)(url, {"action": "exclude_session", "reason": "x"}).status_code == 403, url
    response = client.post(
        reverse("exports:experiment", args=[solo.slug]), {"format": "csv-long", "columns": ["participant", "value"]}
    )
    assert response.status_code == 403 and not ExportJob.objects.exists()
    assert Session.objects.filter(is_preview=True).exists() and not Session.objects.get(pk=101).excluded


def test_reading_data_does_not_allow_deleting_or_excluding(client, solo, setup):
    client.force_login(staff_with("view_session", "view_response"))
    assert client.get(reverse("exports:experiment", args=[solo.slug])).status_code == 200
    assert client.get(reverse("exports:sessions", args=[solo.slug])).status_code == 200
    assert client.post(reverse("exports:delete_previews", args=[solo.slug])).status_code == 403
    action = reverse("exports:set_exclusion", args=[solo.slug, 101])
    assert client.post(action, {"action": "exclude_session", "reason": "bot"}).status_code == 403
    assert Session.objects.filter(is_preview=True).exists() and not Session.objects.get(pk=101).excluded


def test_identifying_columns_need_view_subject(client, solo, setup):
    url = reverse("exports:experiment", args=[solo.slug])
    client.force_login(staff_with("view_session", "view_response"))
    response = client.post(url, {"format": "csv-long", "columns": ["participant", "email"]})
    assert response.status_code == 403 and not ExportJob.objects.exists()
    assert client.post(url, {"format": "csv-long", "columns": ["participant", "value"]}).status_code == 302


def test_download_of_an_identifiable_job_needs_view_subject(client, solo, setup):
    client.force_login(staff_with(*EXPORT_PERMS))
    url = reverse("exports:experiment", args=[solo.slug])
    client.post(url, {"format": "csv-long", "columns": ["participant", "email"]})
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.DONE and "identifiable" in job.file.name
    download = reverse("exports:job_download", args=[job.pk])
    assert client.get(download).status_code == 200
    client.force_login(staff_with("view_session", "view_response", username="reader"))
    assert client.get(download).status_code == 403
    assert client.get(reverse("exports:job_status", args=[job.pk])).status_code == 200


def test_non_staff_is_sent_to_the_login(client, solo, setup):
    client.force_login(get_user_model().objects.create_user("p", password="pw"))
    response = client.get(reverse("exports:job_download", args=[1]))
    assert response.status_code == 302 and "/editor/login/" in response["Location"]


def test_job_files_sit_in_an_unguessable_folder(client, solo, setup, tmp_path):
    client.force_login(staff_with(*EXPORT_PERMS))
    client.post(reverse("exports:experiment", args=[solo.slug]), {"format": "json", "columns": ["participant"]})
    job = ExportJob.objects.get()
    folder = Path(job.file.name).parent
    assert folder.parent == Path("exports") and folder.name.startswith(f"{job.pk}-") and len(folder.name) >= 34
    assert (tmp_path / job.file.name).is_file()


# ------------------------------------------------------------------ CSV formula injection
@pytest.mark.parametrize(
    "text, expected",
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\r=1", "'\r=1"),
        ("-3", "-3"),
        ("+1.5e3", "+1.5e3"),
        ("-.5", "-.5"),
        ("plain", "plain"),
        ("", ""),
    ],
)
def test_guard_formula(text, expected):
    assert records.guard_formula(text) == expected


def test_numbers_and_json_cells_are_untouched():
    cell = records.cell
    assert cell(-3) == "-3" and cell(-2.5) == "-2.5" and cell(["=x"]) == '["=x"]' and cell(None) == ""


def _rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_formulas_typed_by_participants_are_neutralised_in_csv_exports(solo, export):
    row = Response.objects.filter(experiment=solo, jspsych_data__isnull=True, question__isnull=False).first()
    Response.objects.filter(pk=row.pk).update(value='=HYPERLINK("http://evil")')
    trial = Response.objects.filter(experiment=solo, jspsych_data__isnull=False).first()
    Response.objects.filter(pk=trial.pk).update(jspsych_data={**trial.jspsych_data, "note": "@SUM(1)", "delta": -3})
    _, files = export(solo, "csv-long", filters={"include_preview": True})
    long = _rows(files[f"{solo.slug}_long.csv"])
    values = {r["value"] for r in long}
    assert '\'=HYPERLINK("http://evil")' in values and '=HYPERLINK("http://evil")' not in values
    notes = {r.get("jspsych.note") for r in long}
    assert "'@SUM(1)" in notes and "-3" in {r.get("jspsych.delta") for r in long}
    _, files = export(solo, "csv-wide", filters={"include_preview": True})
    wide = files[f"{solo.slug}_wide.csv"].decode()
    assert "'=HYPERLINK" in wide and ",=HYPERLINK" not in wide and "'@SUM(1)" in wide
