"""Rehearsals from the editor: record one, run it in a background thread of this server
process (after commit, like export jobs), store its report.

A rehearsal records the process that runs it (host, pid) and renews a heartbeat every
``HEARTBEAT_SECONDS`` while it runs. When that process dies (a restart, a crash, a
deploy), its thread dies with it and the record would say "running" forever; the next
look at it (its page, the experiment's *Rehearse* page, a new rehearsal) marks it
``interrupted`` with a message instead (``reap_ghosts``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.db import close_old_connections, transaction
from django.utils import timezone

from bots.models import Rehearsal
from bots.rehearsal import Plan, RehearsalError, rehearse

logger = logging.getLogger("bots.rehearsal")
MAX_EDITOR_BOTS = 500
HEARTBEAT_SECONDS = 10.0
GHOST_SECONDS = 60.0  # no heartbeat for this long: its process is gone
_here: set[int] = set()  # rehearsals this process runs (or is about to)
_HOST = socket.gethostname()[:255]
INTERRUPTED = (
    "Interrupted: the server process that ran it (pid {pid} on {host}) stopped before the report "
    "(a restart or a crash); its bots stopped with it. Start the rehearsal again."
)


def start_rehearsal(*, experiment, count: int, url: str, user=None, background: bool = True) -> Rehearsal:
    """Record a rehearsal of ``count`` bots against ``url`` and run it. Raises RehearsalError
    for a count out of range or while another rehearsal of the experiment runs."""
    if not 1 <= count <= MAX_EDITOR_BOTS:
        raise RehearsalError(f"The number of bots must be 1..{MAX_EDITOR_BOTS}.")
    reap_ghosts(experiment.rehearsals.all())
    if experiment.rehearsals.filter(status=Rehearsal.Status.RUNNING).exists():
        raise RehearsalError("A rehearsal of this experiment is running; wait for its report.")
    rehearsal = Rehearsal.objects.create(experiment=experiment, count=count, url=url, created_by=user,
                                         host=_HOST, pid=os.getpid(), heartbeat=timezone.now())  # fmt: skip
    _here.add(rehearsal.pk)
    if background:
        thread = threading.Thread(target=_thread, args=(rehearsal.pk,), name=f"rehearsal-{rehearsal.pk}", daemon=True)
        transaction.on_commit(thread.start)
    else:
        run(rehearsal.pk)
        rehearsal.refresh_from_db()
    return rehearsal


def _thread(rehearsal_id: int) -> None:
    close_old_connections()
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(rehearsal_id, stop), name=f"rehearsal-{rehearsal_id}-heartbeat",
                            daemon=True)  # fmt: skip
    beat.start()
    try:
        run(rehearsal_id)
    finally:
        stop.set()
        beat.join(timeout=HEARTBEAT_SECONDS)
        close_old_connections()


def _beat(rehearsal_id: int, stop: threading.Event) -> None:
    """Renew the heartbeat while the rehearsal runs (its own thread: the bots' loop holds the other)."""
    try:
        while not stop.wait(HEARTBEAT_SECONDS):
            Rehearsal.objects.filter(pk=rehearsal_id, status=Rehearsal.Status.RUNNING).update(heartbeat=timezone.now())
    except Exception:  # noqa: BLE001 - a missed heartbeat only risks an early "interrupted"
        logger.exception("rehearsal %s: heartbeat failed", rehearsal_id)
    finally:
        close_old_connections()


def reap_ghosts(rehearsals=None) -> int:
    """Mark ``interrupted`` the running rehearsals (of ``rehearsals``, default all) whose
    process is gone: this process's pid but not running here (a restarted server got the
    dead one's pid), another pid of this host that no longer exists, or no heartbeat for
    ``GHOST_SECONDS``. Returns how many."""
    rows = (rehearsals if rehearsals is not None else Rehearsal.objects.all()).filter(status=Rehearsal.Status.RUNNING)
    stale = timezone.now() - timezone.timedelta(seconds=GHOST_SECONDS)
    reaped = 0
    for r in rows.only("pk", "host", "pid", "heartbeat", "created"):
        if not _gone(r, stale):
            continue
        message = INTERRUPTED.format(pid=r.pid or "?", host=r.host or "?")
        reaped += Rehearsal.objects.filter(pk=r.pk, status=Rehearsal.Status.RUNNING).update(
            status=Rehearsal.Status.INTERRUPTED, error=message, finished=timezone.now()
        )
        logger.warning("rehearsal %s: %s", r.pk, message)
    return reaped


def _gone(r: Rehearsal, stale) -> bool:
    if (r.heartbeat or r.created) < stale:
        return True
    if r.host != _HOST or r.pid is None:
        return False  # another machine's: its heartbeat tells
    if r.pid == os.getpid():
        return r.pk not in _here
    try:
        os.kill(r.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def run(rehearsal_id: int) -> None:
    _here.add(rehearsal_id)
    try:
        _run(rehearsal_id)
    finally:
        _here.discard(rehearsal_id)


def _run(rehearsal_id: int) -> None:
    rehearsal = Rehearsal.objects.select_related("experiment").get(pk=rehearsal_id)
    plan = Plan(experiment=rehearsal.experiment.slug, count=rehearsal.count, url=rehearsal.url, think=(0.2, 1.0),
                start_group=rehearsal.experiment.is_group, timeout=300.0)  # fmt: skip
    try:
        report = rehearse(plan)
    except Exception as exc:  # noqa: BLE001 - recorded on the rehearsal and shown on its page
        logger.exception("rehearsal %s failed", rehearsal_id)
        Rehearsal.objects.filter(pk=rehearsal_id).update(
            status=Rehearsal.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished=timezone.now()
        )
        return
    Rehearsal.objects.filter(pk=rehearsal_id).update(
        status=Rehearsal.Status.DONE, report=report, finished=timezone.now()
    )
