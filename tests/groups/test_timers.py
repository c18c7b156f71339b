"""Group timers (groups/timers.py, issue 20): rows armed in the change's transaction,
fired once each by ``fire_due``, a failing handler rolled back and kept as fired."""

from __future__ import annotations

import pytest
from django.db import transaction

from groups import timers
from groups.models import StepLog, Timer

pytestmark = pytest.mark.django_db(transaction=True)


def probes(gs):
    return list(StepLog.objects.filter(group_session=gs, action="timer_probe"))


def test_due_timers_fire_once_and_later_ones_wait(gs):
    now = timers.now_ms()
    timers.schedule(gs.pk, timers.PROBE, "a", due_ms=now - 10)
    timers.schedule(gs.pk, timers.PROBE, "b", due_ms=now - 5)
    timers.schedule(gs.pk, timers.PROBE, "later", due_ms=now + 60_000)
    assert timers.next_due_ms() == now - 10
    assert timers.fire_due("p1") == 2
    assert timers.fire_due("p2") == 0  # fired is fired
    fired = {t.key: t for t in Timer.objects.filter(group_session=gs)}
    assert fired["a"].fired_by == "p1" and fired["later"].fired_ms is None
    assert sorted(p.data["timer"] for p in probes(gs)) == sorted([fired["a"].pk, fired["b"].pk])
    assert all(p.data["late_ms"] >= 0 for p in probes(gs))


def test_schedule_moves_an_armed_timer_but_never_rearms_a_fired_one(gs):
    now = timers.now_ms()
    timers.schedule(gs.pk, timers.PROBE, "x", due_ms=now + 60_000)
    assert timers.schedule(gs.pk, timers.PROBE, "x", due_ms=now - 1)  # extended/shortened: moved
    assert Timer.objects.get(key="x").due_ms == now - 1
    assert timers.fire_due("p") == 1
    assert not timers.schedule(gs.pk, timers.PROBE, "x", due_ms=now - 1)
    assert timers.fire_due("p") == 0 and len(probes(gs)) == 1


def test_cancel_disarms_pending_timers_only(gs):
    now = timers.now_ms()
    for key in ("a", "b"):
        timers.schedule(gs.pk, timers.PROBE, key, due_ms=now - 1)
    timers.fire_one("p")
    assert timers.cancel(gs.pk, timers.PROBE) == 1
    assert Timer.objects.count() == 1 and Timer.objects.get().fired_ms is not None


def test_a_failing_handler_keeps_nothing_it_wrote_and_does_not_stall_the_others(gs, monkeypatch):
    def broken(timer, fired_ms):
        StepLog.objects.create(group_session_id=timer.group_session_id, step=0, action="half", at_ms=0, at=gs.created)
        raise RuntimeError("boom")

    timers.register("broken", broken)
    now = timers.now_ms()
    timers.schedule(gs.pk, "broken", "1", due_ms=now - 20)
    timers.schedule(gs.pk, timers.PROBE, "ok", due_ms=now - 10)
    timers.schedule(gs.pk, "unknown-kind", "1", due_ms=now - 5)
    assert timers.fire_due("p") == 3
    failed = Timer.objects.get(kind="broken")
    assert failed.fired_ms is not None and failed.data["error"] == "RuntimeError: boom"
    assert "LookupError" in Timer.objects.get(kind="unknown-kind").data["error"]
    assert not StepLog.objects.filter(action="half").exists() and len(probes(gs)) == 1


def test_arming_in_a_rolled_back_change_arms_nothing(gs):
    with pytest.raises(RuntimeError), transaction.atomic():
        timers.schedule(gs.pk, timers.PROBE, "x", due_ms=timers.now_ms())
        raise RuntimeError
    assert not Timer.objects.exists()


def test_the_scheduler_thread_fires_at_the_deadline(gs):
    scheduler = timers.Scheduler("thread", poll=0.05)
    scheduler.start()
    try:
        due = timers.now_ms() + 300
        timers.schedule(gs.pk, timers.PROBE, "t", due_ms=due)
        timers.wake()
        deadline = timers.now_ms() + 5000
        while not probes(gs) and timers.now_ms() < deadline:
            scheduler.stopped.wait(0.05)
    finally:
        scheduler.stop()
        scheduler.join(5)
    (probe,) = probes(gs)
    assert 0 <= probe.data["late_ms"] < 250 and probe.data["by"] == "thread"


def test_a_poll_with_nothing_due_is_one_statement_and_fires_nothing(gs):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    timers.schedule(gs.pk, timers.PROBE, "later", due_ms=timers.now_ms() + 60_000)
    scheduler = timers.Scheduler("poll", poll=0)
    with CaptureQueriesContext(connection) as idle:
        scheduler.step()
    assert len(idle) == 1 and "MIN" in idle[0]["sql"] and not probes(gs)
    Timer.objects.filter(key="later").update(due_ms=timers.now_ms() - 1)
    scheduler.step()
    assert [p.data["by"] for p in probes(gs)] == ["poll"]
    with CaptureQueriesContext(connection) as after:
        scheduler.step()
    assert len(after) == 1 and len(probes(gs)) == 1  # fired is fired; nothing is due any more


def test_no_timer_at_all_has_no_next_due(db):
    assert timers.next_due_ms() is None
