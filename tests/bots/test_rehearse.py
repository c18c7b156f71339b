"""The editor's *Rehearse*: the button on the experiment's page, the form that starts a
rehearsal, and a rehearsal run to its report against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots import services
from bots.models import Rehearsal
from bots.rehearsal import RehearsalError
from runner.definitions.loader import load_file
from runner.models import Session

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("lead", password="pw-lead-123456", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_the_experiment_page_has_the_button_and_the_form_starts_a_rehearsal(db, client, staff, monkeypatch):
    exp = load_file(path=DEMO / "colors.yaml").experiment
    page = client.get(f"/editor/runner/experiment/{exp.pk}/change/").content.decode()
    assert f'href="/editor/bots/rehearse/{exp.pk}/" data-rehearse-link' in page
    started = []
    monkeypatch.setattr(services, "_thread", lambda pk: started.append(pk))
    assert client.get(f"/editor/bots/rehearse/{exp.pk}/").status_code == 200
    response = client.post(f"/editor/bots/rehearse/{exp.pk}/", {"count": "0"})
    assert response.status_code == 400 and not Rehearsal.objects.exists()
    with pytest.MonkeyPatch.context() as m:
        m.setattr("django.db.transaction.on_commit", lambda fn: fn())
        response = client.post(f"/editor/bots/rehearse/{exp.pk}/", {"count": "12"})
    rehearsal = Rehearsal.objects.get()
    assert response.status_code == 302 and response.url == f"/editor/bots/rehearsals/{rehearsal.pk}/"
    assert (rehearsal.count, rehearsal.url, rehearsal.status) == (12, "http://testserver", "running")
    page = client.get(response.url).content.decode()
    assert 'data-status="running"' in page and 'http-equiv="refresh"' in page
    with pytest.raises(RehearsalError, match="is running"):
        services.start_rehearsal(experiment=exp, count=3, url="http://testserver", background=False)


def test_participants_cannot_open_it(db, client):
    exp = load_file(path=DEMO / "solo.yaml").experiment
    response = client.get(f"/editor/bots/rehearse/{exp.pk}/")
    assert response.status_code == 302 and "/login/" in response.url


def test_a_rehearsal_runs_to_its_report(transactional_db, client, staff, bots_server):
    exp = load_file(path=DEMO / "colors.yaml").experiment
    rehearsal = services.start_rehearsal(experiment=exp, count=3, url=bots_server.url, user=staff, background=False)
    assert rehearsal.status == "done", rehearsal.error
    assert rehearsal.report["ok"] and rehearsal.report["answers"]["lost"] == 0
    assert Session.objects.filter(experiment=exp, is_bot=True).count() == 3
    page = client.get(f"/editor/bots/rehearsals/{rehearsal.pk}/").content.decode()
    assert "data-ok" in page and "click -&gt; screen" in page and "refresh" not in page
