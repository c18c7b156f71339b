"""Codes (alphabet, uniqueness, normalisation, rate limit) and the start_group_session command."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from groups import codes
from groups.models import GroupSession
from tests.caches import clear_own_cache
from tests.factories import ExperimentFactory, GroupSessionFactory


def test_random_code_alphabet_and_length():
    drawn = {codes.random_code() for _ in range(300)}
    assert len(drawn) > 250
    for code in drawn:
        assert codes.looks_like_code(code)
        assert not set(code) & set("01OIL")


def test_normalize_is_case_insensitive():
    assert codes.normalize_code(" ab-c d ") == "ABCD"
    assert codes.normalize_code(None) == ""


@pytest.mark.django_db
def test_new_code_avoids_live_codes_of_both_kinds(monkeypatch):
    GroupSessionFactory(participant_code="AAAA", experimenter_code="BBBB")
    draws = iter(["AAAA", "BBBB", "CCCC", "DDDD"])
    monkeypatch.setattr(codes, "random_code", lambda: next(draws))
    assert codes.new_code(avoid={"CCCC"}) == "DDDD"


@pytest.mark.django_db
def test_expired_codes_are_free_again(monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    GroupSessionFactory(participant_code="AAAA", expires=timezone.now() - timedelta(minutes=1))
    monkeypatch.setattr(codes, "random_code", lambda: "AAAA")
    assert codes.new_code() == "AAAA"


@pytest.mark.django_db
def test_new_code_gives_up_with_machine_code(monkeypatch):
    GroupSessionFactory(participant_code="AAAA")
    monkeypatch.setattr(codes, "random_code", lambda: "AAAA")
    with pytest.raises(codes.GroupError) as info:
        codes.new_code(attempts=3)
    assert info.value.code == "codes_exhausted"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sessions_started_at_the_same_moment_never_share_a_code(monkeypatch):
    """Both draw the same first code; the second to choose waits until the first has
    stored it, sees it taken and draws again (without the lock both checked before
    either stored, and both got AAAA)."""
    import threading
    import time

    from groups import services
    from tests.threads import in_threads

    experiment = ExperimentFactory(is_group=True)
    draws, lock = {}, threading.Lock()

    def drawn():  # each thread: AAAA first, then codes of its own
        with lock:
            mine = draws.setdefault(threading.get_ident(), iter(["AAAA", *(f"{c}{c}{c}{c}" for c in "BCDEFGHJ")]))
            return next(mine)

    in_use = codes.code_in_use

    def slow_check(code, **kwargs):  # widen the moment between the check and the commit
        found = in_use(code, **kwargs)
        time.sleep(0.2)
        return found

    monkeypatch.setattr(codes, "random_code", drawn)
    monkeypatch.setattr(codes, "code_in_use", slow_check)
    barrier = threading.Barrier(2, timeout=5)
    started = []

    def start():
        barrier.wait()
        started.append(services.start_group_session(experiment=experiment))

    in_threads([start, start], timeout=20)
    assert len(started) == 2
    every = [c for gs in started for c in (gs.participant_code, gs.experimenter_code)]
    assert len(set(every)) == 4, every
    assert "AAAA" in every


def test_rate_limit_counts_failures_per_browser_and_address():
    clear_own_cache()
    one = codes.Client(browser="a:10.0.0.1", address="10.0.0.1")
    for _ in range(settings.CODE_ATTEMPTS_PER_MINUTE):
        assert not codes.is_rate_limited(kind="participant", client=one)
        assert codes.begin_attempt(kind="participant", client=one)
    assert codes.is_rate_limited(kind="participant", client=one)
    assert not codes.begin_attempt(kind="participant", client=one)
    assert not codes.is_rate_limited(kind="participant", client=codes.Client(browser="a:10.0.0.2", address="10.0.0.2"))
    assert not codes.is_rate_limited(kind="experimenter", client=one)
    # another browser at the same address: its own count, the address's is shared
    assert not codes.is_rate_limited(kind="participant", client=codes.Client(browser="b:x", address="10.0.0.1"))


@pytest.mark.django_db
def test_command_prints_spec_json(staff):
    exp = ExperimentFactory(is_group=True, slug="colors")
    out = StringIO()
    call_command(
        "start_group_session",
        "--experiment",
        "colors",
        "--group",
        "G1",
        "--size",
        "3",
        "--experimenter",
        "exp",
        stdout=out,
    )
    payload = json.loads(out.getvalue())
    assert list(payload) == ["group_session", "participant_code", "experimenter_code", "expires"]
    gs = GroupSession.objects.get(pk=payload["group_session"])
    assert (gs.participant_code, gs.experimenter_code) == (payload["participant_code"], payload["experimenter_code"])
    assert gs.expires.isoformat() == payload["expires"]
    assert gs.experiment == exp and gs.group.name == "G1" and gs.expected_size == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "nope"], "No experiment"),
        (["--experiment", "solo"], "not a group experiment"),
        (["--experiment", "colors", "--experimenter", "ghost"], "No user"),
        (["--experiment", "colors", "--size", "0"], "at least one"),
    ],
)
def test_command_errors(args, message):
    ExperimentFactory(is_group=True, slug="colors")
    ExperimentFactory(is_group=False, slug="solo")
    with pytest.raises(CommandError, match=message):
        call_command("start_group_session", *args, stdout=StringIO())
    assert not GroupSession.objects.exists()


def test_command_exits_non_zero_from_the_shell(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings.test",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}", "ENSEMBLE_VAR_DIR": str(tmp_path)}  # fmt: skip
    run = [sys.executable, "manage.py"]
    subprocess.run([*run, "migrate", "-v0"], check=True, cwd=settings.BASE_DIR, env=env)
    result = subprocess.run(
        [*run, "start_group_session", "--experiment", "does-not-exist"],
        capture_output=True, text=True, cwd=settings.BASE_DIR, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "No experiment with slug 'does-not-exist'" in result.stderr
    assert result.stdout == ""
