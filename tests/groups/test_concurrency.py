"""Prove the race, then prove the fix (STYLE 13): two experimenters press Advance
on the same step at the same moment, in two threads with their own connections."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from groups import selectors, services
from groups.models import GroupSession, StepLog
from groups.state import GroupError

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(gs, staff, monkeypatch, *, locking: bool):
    barrier = threading.Barrier(2, timeout=1.5)
    original_load = selectors.load_state

    def load_state_together(group_session):
        try:
            barrier.wait()  # both read the state before either writes (if the lock lets them)
        except threading.BrokenBarrierError:
            pass
        return original_load(group_session)

    monkeypatch.setattr(services, "load_state", load_state_together)
    if not locking:
        monkeypatch.setattr(
            services, "_lock", lambda g: GroupSession.objects.select_related("experiment").get(pk=services._pk(g))
        )
    outcomes = []

    def press():
        try:
            services.group_session_advance(group_session=gs.pk, step=0, by=staff)
            outcomes.append("ok")
        except GroupError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


@pytest.fixture
def running(gs, join, staff):
    join()
    services.group_session_start(group_session=gs, by=staff)
    return gs


def test_without_the_lock_both_advances_win(running, staff, monkeypatch):
    assert race(running, staff, monkeypatch, locking=False) == ["ok", "ok"]
    assert StepLog.objects.filter(group_session=running, action="advanced").count() == 2  # the race


def test_with_the_lock_one_advance_wins(running, staff, monkeypatch):
    assert race(running, staff, monkeypatch, locking=True) == ["ok", "stale_step"]
    running.refresh_from_db()
    assert running.step == 1
    assert StepLog.objects.filter(group_session=running, action="advanced").count() == 1
