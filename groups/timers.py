"""Server-side timers of group sessions: one scheduler thread per server process, the
timers themselves rows of ``groups.models.Timer`` (so they survive a restart of every
process), each fired exactly once by exactly one process.

Firing a timer is one transaction: claim the row, run its kind's handler (which changes
the group session through the services as usual), mark it fired. The claim is
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL: two processes polling at the same
moment each take a different due row, and a row whose firing is in flight is skipped,
not waited for. SQLite runs one write transaction at a time (``transaction_mode:
IMMEDIATE``), and the claim there is a conditional ``UPDATE ... WHERE fired_ms IS NULL``
as the transaction's first statement, so of two processes the second sees the row
fired. Either way the claim and the handler's effects commit or roll back together:
a process that dies mid-firing leaves the row unfired for the next poll.

Precision: the scheduler sleeps until the earliest pending due time (at most
``GROUP_TIMER_POLL_SECONDS``, 0.1 s, so a timer scheduled by another process is seen
in time) and fires what is due; ``bench/timers.py`` measures fired-at minus due.

    from groups import timers
    timers.register("probe", handler)        # handler(timer, now_ms) in the claim's transaction
    timers.schedule(gs_id, "probe", "0", due_ms=now + 5000)
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from .models import StepLog, Timer
from .sql import statement

logger = logging.getLogger(__name__)

POLL_SECONDS = float(getattr(settings, "GROUP_TIMER_POLL_SECONDS", 0.1))
PROBE = "probe"

Handler = Callable[[Timer, int], None]
_handlers: dict[str, Handler] = {}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def register(kind: str, handler: Handler) -> None:
    """``handler(timer, now_ms)`` fires timers of ``kind``, inside the claim's transaction."""
    _handlers[kind] = handler


def schedule(group_session_id: int, kind: str, key: str, *, due_ms: int, data: dict | None = None) -> bool:
    """Arm a timer (or move an armed, unfired one to ``due_ms``). A timer that already
    fired stays fired: a (group session, kind, key) fires at most once. Returns whether
    it is armed now. Call inside the transaction of the change that makes it due."""
    timer, created = Timer.objects.get_or_create(
        group_session_id=group_session_id, kind=kind, key=key, defaults={"due_ms": due_ms, "data": data or {}}
    )
    data = timer.data if data is None else data
    if not created and timer.fired_ms is None and (timer.due_ms, timer.data) != (due_ms, data):
        Timer.objects.filter(pk=timer.pk, fired_ms__isnull=True).update(due_ms=due_ms, data=data)
    transaction.on_commit(wake)
    return timer.fired_ms is None


def cancel(group_session_id: int, kind: str | tuple[str, ...], key: str | None = None) -> int:
    """Disarm unfired timers of ``kind`` (or of each of several kinds; one ``key``, or all of
    them), in one statement."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    pending = Timer.objects.filter(group_session_id=group_session_id, kind__in=kinds, fired_ms__isnull=True)
    if key is not None:
        pending = pending.filter(key=key)
    return pending.delete()[0]


def next_due_ms() -> int | None:
    """The earliest unfired timer's due time (one statement, written once: the scheduler
    asks it at every poll of every process: with the ORM's aggregate and an empty claim
    transaction a poll took 1.5 ms of CPU, now 0.16 ms; docs/groups.md "Timers")."""
    with connection.cursor() as cursor:
        cursor.execute(statement("next_due", _next_due_sql))
        return cursor.fetchone()[0]


def _next_due_sql(q) -> str:
    due, fired = (q(Timer._meta.get_field(name).column) for name in ("due_ms", "fired_ms"))
    return f"SELECT MIN({due}) FROM {q(Timer._meta.db_table)} WHERE {fired} IS NULL"


def _claim(process: str, now: int) -> Timer | None:
    """In a transaction: the earliest due timer, now marked fired by ``process``, or None."""
    pending = Timer.objects.filter(fired_ms__isnull=True, due_ms__lte=now).order_by("due_ms", "pk")
    if connection.features.has_select_for_update_skip_locked:
        timer = pending.select_for_update(skip_locked=True).first()
    else:  # SQLite: this transaction is the only writer until it ends (IMMEDIATE)
        timer = pending.first()
    if timer is None or not Timer.objects.filter(pk=timer.pk, fired_ms__isnull=True).update(
        fired_ms=now, fired_by=process
    ):
        return None
    timer.fired_ms, timer.fired_by = now, process
    return timer


def fire_one(process: str) -> Timer | None:
    """Claim and fire the earliest due timer; None when nothing is due. A handler that
    raises is logged and its timer is kept as fired (with the error), so one bad timer
    cannot stall the others; nothing the handler wrote is kept."""
    with transaction.atomic():
        timer = _claim(process, now_ms())
        if timer is None:
            return None
        handler = _handlers.get(timer.kind)
        try:
            with transaction.atomic():
                if handler is None:
                    raise LookupError(f"no handler for timer kind {timer.kind!r}")
                handler(timer, timer.fired_ms)
        except Exception as exc:
            logger.exception("timer %s failed", timer)
            timer.data = {**timer.data, "error": f"{type(exc).__name__}: {exc}"[:500]}
            Timer.objects.filter(pk=timer.pk).update(data=timer.data)
    return timer


def fire_due(process: str, limit: int = 1000) -> int:
    """Fire every timer that is due now (at most ``limit``); return how many fired."""
    fired = 0
    while fired < limit and fire_one(process) is not None:
        fired += 1
    return fired


def _probe(timer: Timer, fired_ms: int) -> None:
    """The scheduler's own check (tests, ``bench/timers.py``): a step-log row per firing."""
    StepLog.objects.create(
        group_session_id=timer.group_session_id,
        step=-1,
        action="timer_probe",
        at=_at(fired_ms),
        at_ms=fired_ms,
        data={"timer": timer.pk, "due_ms": timer.due_ms, "late_ms": fired_ms - timer.due_ms, "by": timer.fired_by},
    )


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


register(PROBE, _probe)


# ---- the scheduler thread (one per server process) ------------------------------

_wake = threading.Event()
_scheduler: Scheduler | None = None
_lock = threading.Lock()


def wake() -> None:
    """A timer was armed in this process: look again now instead of at the next poll."""
    _wake.set()


class Scheduler(threading.Thread):
    def __init__(self, process: str, poll: float = POLL_SECONDS):
        super().__init__(name="group-timers", daemon=True)
        self.process, self.poll = process, poll
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.step()
            except Exception:  # a database that is away: log and try again at the next poll
                logger.exception("group timer scheduler")
                close_old_connections()
                self.stopped.wait(self.poll)

    def step(self) -> None:
        """One poll: fire what is due, if anything is (an idle poll is one statement, not a
        transaction that claims nothing), then sleep until the next due time or poll."""
        due = next_due_ms()
        if due is not None and due <= now_ms():
            # Nothing fired: the due timer is being fired by another process's transaction,
            # so wait one poll (or a wake) rather than ask again at once.
            due = next_due_ms() if fire_due(self.process) else None
        wait = self.poll if due is None else min(self.poll, max(0.0, (due - now_ms()) / 1000))
        _wake.wait(wait)
        _wake.clear()

    def stop(self) -> None:
        self.stopped.set()
        _wake.set()


def start_scheduler(process: str | None = None) -> Scheduler | None:
    """Start this process's scheduler once (``GROUP_TIMERS=0`` turns it off)."""
    global _scheduler
    if not getattr(settings, "GROUP_TIMERS", True):
        return None
    with _lock:
        if _scheduler is None:
            _scheduler = Scheduler(process or secrets.token_hex(8))
            _scheduler.start()
    return _scheduler
