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


@pytest.fixture(autouse=True)
def _forget_running_here():
    """The process's set of rehearsals it runs: a test's (ids are reused) never leaks into the next."""
    yield
    services._here.clear()


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


def _running(exp, **fields) -> Rehearsal:
    return Rehearsal.objects.create(experiment=exp, count=5, url="http://testserver", **fields)


def test_a_rehearsal_whose_process_is_gone_is_marked_interrupted(db, client, staff):
    """Ghosts after a restart: a record left "running" by a process that died is marked
    interrupted on the next look, with a message; a running one is left alone."""
    import os
    import subprocess
    import sys

    from django.utils import timezone

    exp = load_file(path=DEMO / "colors.yaml").experiment
    now, host = timezone.now(), services._HOST
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    restarted = _running(exp, host=host, pid=os.getpid(), heartbeat=now)  # our pid, not ours: a restart reused it
    crashed = _running(exp, host=host, pid=int(dead.stdout), heartbeat=now)
    silent = _running(exp, host="another-machine", pid=1, heartbeat=now - timezone.timedelta(minutes=5))
    elsewhere = _running(exp, host="another-machine", pid=1, heartbeat=now)
    here = _running(exp, host=host, pid=os.getpid(), heartbeat=now)
    services._here.add(here.pk)
    try:
        page = client.get(f"/editor/bots/rehearsals/{restarted.pk}/").content.decode()
        assert 'data-status="interrupted"' in page and "data-interrupted" in page and "refresh" not in page
        assert f"pid {os.getpid()} on {host}" in page and "Start the rehearsal again" in page
        assert client.get(f"/editor/bots/rehearse/{exp.pk}/").status_code == 200  # looks at all of the experiment's
        statuses = dict(Rehearsal.objects.values_list("pk", "status"))
        assert [statuses[r.pk] for r in (restarted, crashed, silent, elsewhere, here)] == [
            "interrupted", "interrupted", "interrupted", "running", "running"
        ]  # fmt: skip
        assert Rehearsal.objects.get(pk=crashed.pk).finished is not None
        with pytest.raises(RehearsalError, match="is running"):  # the live ones still count
            services.start_rehearsal(experiment=exp, count=3, url="http://testserver", background=False)
    finally:
        services._here.discard(here.pk)
    Rehearsal.objects.filter(pk=elsewhere.pk).update(heartbeat=now - timezone.timedelta(minutes=2))
    assert services.reap_ghosts() == 2  # the silent machine's, and ours that no thread runs any more


def test_a_running_rehearsal_renews_its_heartbeat(transactional_db, monkeypatch):
    import threading

    exp = load_file(path=DEMO / "colors.yaml").experiment
    rehearsal = _running(exp, host=services._HOST, heartbeat=None)
    monkeypatch.setattr(services, "HEARTBEAT_SECONDS", 0.05)
    stop = threading.Event()
    beat = threading.Thread(target=services._beat, args=(rehearsal.pk, stop))
    beat.start()
    stop.wait(0.5)
    stop.set()
    beat.join(5)
    rehearsal.refresh_from_db()
    assert rehearsal.heartbeat is not None and rehearsal.status == "running"
