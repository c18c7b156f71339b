"""The export page: staff only, columns with identifying ones off, jobs, presets, previews, exclusions."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from exports.models import ExportJob, ExportPreset
from runner.models import Session

#: What the export pages ask of an editor account (exports/views.py; docs/security.md).
EXPORT_PERMS = ("view_session", "view_response", "view_subject", "delete_session", "change_session")


def staff_with(*codenames, username="exp"):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="runner", codename__in=codenames))
    return user


@pytest.fixture
def staff(db):
    return staff_with(*EXPORT_PERMS)


@pytest.fixture
def browser(client, staff, settings, tmp_path):
    settings.EXPORTS_IN_BACKGROUND = False
    settings.MEDIA_ROOT = tmp_path
    client.force_login(staff)
    return client


def test_staff_only(client, solo, db):
    url = reverse("exports:experiment", args=[solo.slug])
    assert client.get(url).status_code == 302
    user = get_user_model().objects.create_user("p", password="pw")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and "/editor/login/" in response["Location"]


def test_page_lists_columns_identifying_off(browser, solo):
    html = browser.get(reverse("exports:experiment", args=[solo.slug])).content.decode()
    assert 'value="participant" id="col-1"\n                 checked' in html
    assert 'value="email" id=' in html
    email_box = html[html.index('value="email"') : html.index('value="email"') + 120]
    assert "checked" not in email_box
    assert html.count("identifying</span>") == 11
    assert "1 preview session" in html
    assert browser.get(reverse("exports:index")).status_code == 200


def test_export_job_progress_and_download(browser, solo):
    url = reverse("exports:experiment", args=[solo.slug])
    response = browser.post(
        url, {"format": "csv-long", "columns": ["participant", "session", "value"], "include_preview": "on"}
    )
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?job={job.pk}")
    page = browser.get(response["Location"]).content.decode()
    assert 'id="export-job"' in page
    status = browser.get(reverse("exports:job_status", args=[job.pk])).json()
    assert status["status"] == "done" and status["progress"] == 100 and status["download"]
    download = browser.get(status["download"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert b"".join(download.streaming_content)[:2] == b"PK"
    assert job.filters["include_preview"] is True


def test_invalid_choice_shows_errors(browser, solo):
    response = browser.post(reverse("exports:experiment", args=[solo.slug]), {"format": "xlsx"})
    assert response.status_code == 200 and not ExportJob.objects.exists()


def test_save_and_load_preset(browser, solo):
    url = reverse("exports:experiment", args=[solo.slug])
    response = browser.post(
        url,
        {
            "format": "csv-wide",
            "columns": ["participant", "value"],
            "finished_only": "on",
            "preset_name": "quick",
            "save_preset": "1",
        },
    )
    preset = ExportPreset.objects.get()
    assert response.status_code == 302 and preset.filters["finished_only"] is True
    html = browser.get(f"{url}?preset={preset.pk}").content.decode()
    assert 'value="csv-wide" selected' in html
    assert 'value="session" id="col-2"\n                 checked' not in html


def test_delete_previews_asks_first(browser, solo):
    url = reverse("exports:delete_previews", args=[solo.slug])
    page = browser.get(url).content.decode()
    assert "Delete 1 preview session" in page and Session.objects.filter(is_preview=True).exists()
    browser.post(url)
    assert not Session.objects.filter(is_preview=True).exists()


def test_exclusion_page(browser, solo):
    url = reverse("exports:sessions", args=[solo.slug])
    html = browser.get(url).content.decode()
    assert "failed attention check" in html and "Poison" not in html
    action = reverse("exports:set_exclusion", args=[solo.slug, 101])
    browser.post(action, {"action": "exclude_session", "reason": ""})
    assert not Session.objects.get(pk=101).excluded
    browser.post(action, {"action": "exclude_session", "reason": "bot"})
    assert Session.objects.get(pk=101).exclusion_reason == "bot"
    browser.post(action, {"action": "exclude_subject", "reason": "withdrew"})
    assert Session.objects.get(pk=101).subject.excluded


def test_page_after_an_export_keeps_its_choices(browser, solo):
    """After "Export", the page it lands on shows the format, columns and filters just used
    (not the defaults), and the job's line in "Recent exports" can follow its card."""
    url = reverse("exports:experiment", args=[solo.slug])
    response = browser.post(url, {"format": "psychds", "columns": ["participant", "session"], "finished_only": "on"})
    job = ExportJob.objects.get()
    page = browser.get(response["Location"]).content.decode()
    assert '<option value="psychds" selected>' in page and '<option value="csv-long" selected>' not in page
    value_box = page[page.index('value="value"') : page.index('value="value"') + 80]
    assert "checked" not in value_box
    assert 'name="finished_only" id="f-finished" checked' in page
    assert f'data-export-job="{job.pk}"' in page and f'id="export-job" data-job="{job.pk}"' in page
