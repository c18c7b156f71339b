"""Management commands: load_experiment, dump_experiment, create_tickets, seed_demo, ensure_experimenter."""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from runner.definitions import dump_experiment, load_file
from runner.models import Experiment, ExperimentXForm, Ticket
from tests.runner.definition_helpers import (
    BAD_FILES,
    DEMO_DIR,
    GOOD_DIR,
    expectations,
    missing_expectations,
    table_counts,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE = GOOD_DIR / "probe.yaml"
URL = re.compile(r"^http://127\.0\.0\.1:8000/run/(\d+)/start/\?tc=([A-Za-z0-9_-]+)$")


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    err = StringIO()
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=StringIO(), stderr=err)
    return str(info.value), err.getvalue()


# --------------------------------------------------------------------------- load_experiment


@pytest.mark.django_db
def test_load_experiment_prints_id_and_slug():
    out, err = run("load_experiment", str(PROBE))
    experiment = Experiment.objects.get(slug="probe")
    assert out.strip() == f"{experiment.pk} probe (created)"
    assert err == ""
    out, _ = run("load_experiment", str(PROBE))
    assert out.strip() == f"{experiment.pk} probe (unchanged)"


@pytest.mark.django_db
@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_load_experiment_refuses_bad_files(path):
    load_file(path=PROBE)
    before = table_counts()
    message, err = run_failing("load_experiment", str(path))
    assert "nothing was changed" in message
    assert missing_expectations(path, err.splitlines()) == [], err
    assert table_counts() == before


@pytest.mark.django_db
def test_load_experiment_create_only_and_missing_file(tmp_path):
    run("load_experiment", str(PROBE))
    _, err = run_failing("load_experiment", "--create-only", str(PROBE))
    assert f"{PROBE}:2: an experiment with slug 'probe' already exists" in err
    missing = tmp_path / "nope.yaml"
    _, err = run_failing("load_experiment", str(missing))
    assert err.startswith(f"{missing}:1: cannot read the file")


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return (
        f"postgres://{s['USER']}:{s.get('PASSWORD') or ''}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    )


@pytest.mark.django_db(transaction=True)
def test_load_experiment_as_a_real_process_exits_non_zero_and_changes_nothing():
    """The command line a researcher types, against this test's database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings.test", "DATABASE_URL": _database_url()}

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    good = manage("load_experiment", str(PROBE))
    assert good.returncode == 0, good.stderr
    experiment = Experiment.objects.get(slug="probe")
    assert good.stdout.strip() == f"{experiment.pk} probe (created)"
    before, before_dump = table_counts(), dump_experiment(experiment)
    bad = BAD_FILES[0].parent / "duplicate_names.yaml"
    result = manage("load_experiment", str(bad))
    assert result.returncode != 0
    for line, text in expectations(bad):
        assert f"{bad}:{line}: " in result.stderr and text in result.stderr
    assert "nothing was changed" in result.stderr
    assert table_counts() == before
    assert dump_experiment(Experiment.objects.get(slug="probe")) == before_dump


# --------------------------------------------------------------------------- dump_experiment


@pytest.mark.django_db
def test_dump_experiment_to_stdout_and_file(tmp_path):
    experiment = load_file(path=PROBE).experiment
    out, _ = run("dump_experiment", "probe")
    assert out == dump_experiment(experiment)
    target = tmp_path / "probe.yaml"
    out, _ = run("dump_experiment", "probe", "--out", str(target))
    assert target.read_text() == dump_experiment(experiment)
    assert [p.name for p in tmp_path.iterdir()] == ["probe.yaml"], "no temporary file left behind"
    message, _ = run_failing("dump_experiment", "no-such-slug")
    assert "no experiment with slug 'no-such-slug'" in message
    message, _ = run_failing("dump_experiment", "probe", "--out", str(tmp_path / "missing" / "x.yaml"))
    assert "does not exist" in message


# --------------------------------------------------------------------------- create_tickets


@pytest.mark.django_db
def test_create_tickets_prints_one_run_url_per_ticket():
    experiment = load_file(path=PROBE).experiment
    out, _ = run(
        "create_tickets", "--experiment", "probe", "--type", "user", "--count", "3", "--expires", "2099-01-01T00:00:00Z"
    )
    lines = out.splitlines()
    assert len(lines) == 3
    codes = []
    for line in lines:
        match = URL.match(line)
        assert match, line
        assert int(match.group(1)) == experiment.pk
        codes.append(match.group(2))
    tickets = Ticket.objects.filter(code__in=codes)
    assert tickets.count() == 3
    assert {t.type for t in tickets} == {"user"}
    assert {t.expires.isoformat() for t in tickets} == {"2099-01-01T00:00:00+00:00"}


@pytest.mark.django_db
def test_create_tickets_base_url_and_valid_from():
    load_file(path=PROBE)
    out, _ = run(
        "create_tickets",
        "--experiment=probe",
        "--type=master",
        "--valid-from=2030-01-01",
        "--base-url=https://lab.example.org/",
    )
    assert out.startswith("https://lab.example.org/run/") and "//run" not in out
    ticket = Ticket.objects.get()
    assert ticket.valid_from.isoformat() == "2030-01-01T00:00:00+00:00" and ticket.type == "master"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "nope", "--type", "master"], "no experiment with slug 'nope'"),
        (["--experiment", "probe", "--type", "master", "--count", "0"], "count must be a whole number from 1"),
        (["--experiment", "probe", "--type", "master", "--expires", "next tuesday"], "not an ISO 8601"),
        (["--experiment", "probe", "--type", "master", "--expires", "2001-01-01"], "already in the past"),
        (
            ["--experiment", "probe", "--type", "user", "--valid-from", "2099-02-01", "--expires", "2099-01-01"],
            "expires must be after valid_from",
        ),
        (["--experiment", "probe", "--type", "master", "--base-url", "lab.example.org"], "--base-url must start"),
    ],
)
def test_create_tickets_refuses_bad_input_and_creates_nothing(args, message):
    load_file(path=PROBE)
    text, _ = run_failing("create_tickets", *args)
    assert message in text
    assert Ticket.objects.count() == 0


@pytest.mark.django_db
def test_create_tickets_refuses_an_unknown_type():
    load_file(path=PROBE)
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_tickets", "--experiment", "probe", "--type", "group", stdout=StringIO())


@pytest.mark.django_db
def test_ticket_codes_are_unique_unguessable_and_from_secrets(monkeypatch):
    load_file(path=PROBE)
    calls = []
    real = secrets.token_urlsafe

    def spy(nbytes=None):
        calls.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(secrets, "token_urlsafe", spy)
    out, _ = run("create_tickets", "--experiment", "probe", "--type", "user", "--count", "1000")
    codes = [URL.match(line).group(2) for line in out.splitlines()]
    assert len(codes) == 1000 and len(set(codes)) == 1000
    assert len(calls) >= 1000 and all(n * 8 >= 128 for n in calls)
    for code in codes:
        raw = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
        assert len(raw) * 8 >= 128
    assert settings.TICKET_SECRET_BYTES * 8 >= 128
    # No shared structure between codes (not a counter, not a timestamp).
    assert len({code[:6] for code in codes}) > 990


# --------------------------------------------------------------------------- seed_demo


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    out, _ = run("seed_demo")
    assert "created: demo-colors" in out and "created: demo-solo" in out
    solo = Experiment.objects.get(slug="demo-solo")
    links = list(ExperimentXForm.objects.order_by("pk").values_list("pk", flat=True))
    before = table_counts()
    out, _ = run("seed_demo")
    assert "unchanged: demo-colors" in out and "unchanged: demo-solo" in out
    assert table_counts() == before
    assert list(ExperimentXForm.objects.order_by("pk").values_list("pk", flat=True)) == links
    assert Experiment.objects.get(slug="demo-solo").pk == solo.pk


@pytest.mark.django_db
def test_seed_demo_loads_all_files_or_none(tmp_path):
    (tmp_path / "a.yaml").write_text((DEMO_DIR / "solo.yaml").read_text())
    (tmp_path / "b.yaml").write_text("slug: broken\ntitle: Broken\nforms: [{name: x, handler: nope}]\n")
    message, err = run_failing("seed_demo", "--dir", str(tmp_path))
    assert "nothing was changed" in message
    assert f"{tmp_path / 'b.yaml'}:3: " in err
    assert not Experiment.objects.exists()
    message, _ = run_failing("seed_demo", "--dir", str(tmp_path / "empty"))
    assert "no *.yaml files" in message


# --------------------------------------------------------------------------- ensure_experimenter


@pytest.mark.django_db
def test_ensure_experimenter_creates_once_and_prints_the_login(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    out, _ = run("ensure_experimenter")
    match = re.fullmatch(r"Experimenter login: experimenter / (\S+) at http://127\.0\.0\.1:8000/editor/\n", out)
    assert match, out
    password = match.group(1)
    assert len(password) >= 16
    secret = tmp_path / "experimenter_password"
    assert secret.read_text().strip() == password
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    user = get_user_model().objects.get(username="experimenter")
    assert user.is_staff and user.is_superuser and user.check_password(password)
    again, _ = run("ensure_experimenter")
    assert again == out
    assert get_user_model().objects.filter(username="experimenter").count() == 1


@pytest.mark.django_db
def test_ensure_experimenter_recovers_from_a_lost_file_or_database(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    first, _ = run("ensure_experimenter")
    password = first.split(" / ")[1].split(" ")[0]
    get_user_model().objects.filter(username="experimenter").delete()  # a fresh database, same var/
    out, _ = run("ensure_experimenter")
    assert f" / {password} " in out
    assert get_user_model().objects.get(username="experimenter").check_password(password)
    (tmp_path / "experimenter_password").unlink()  # a lost file: a new password
    out, _ = run("ensure_experimenter")
    new = out.split(" / ")[1].split(" ")[0]
    assert new != password and get_user_model().objects.get(username="experimenter").check_password(new)


@pytest.mark.django_db
def test_ensure_experimenter_does_not_undo_a_changed_password(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    run("ensure_experimenter")
    user = get_user_model().objects.get(username="experimenter")
    user.set_password("chosen-by-the-researcher")
    user.save()
    out, _ = run("ensure_experimenter")
    assert "password was changed in the editor" in out and " / " not in out
    user.refresh_from_db()
    assert user.check_password("chosen-by-the-researcher")


@pytest.mark.django_db
def test_ticket_service_rules():
    from datetime import datetime, timedelta

    from django.utils import timezone

    from runner.tickets import TicketError, create_tickets, run_url

    experiment = load_file(path=PROBE).experiment
    with pytest.raises(TicketError, match="ticket type"):
        create_tickets(experiment=experiment, type="group")
    with pytest.raises(TicketError, match="time zone"):
        create_tickets(experiment=experiment, type="user", expires=datetime(2099, 1, 1))
    with pytest.raises(TicketError, match="count"):
        create_tickets(experiment=experiment, type="user", count=True)
    assert Ticket.objects.count() == 0
    later = timezone.now() + timedelta(days=1)
    [ticket] = create_tickets(experiment=experiment, type="master", expires=later, label="web")
    assert ticket.pk and ticket.is_valid_now() and not ticket.is_valid_now(later)
    assert run_url(ticket, "https://x.org/base/") == f"https://x.org/base/run/{experiment.pk}/start/?tc={ticket.code}"
