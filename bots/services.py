"""Rehearsals from the editor: record one, run it in a background thread of this server
process (after commit, like export jobs), store its report."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, transaction
from django.utils import timezone

from bots.models import Rehearsal
from bots.rehearsal import Plan, RehearsalError, rehearse

logger = logging.getLogger("bots.rehearsal")
MAX_EDITOR_BOTS = 500
RUNNING_LIMIT_MINUTES = 60


def start_rehearsal(*, experiment, count: int, url: str, user=None, background: bool = True) -> Rehearsal:
    """Record a rehearsal of ``count`` bots against ``url`` and run it. Raises RehearsalError
    for a count out of range or while another rehearsal of the experiment runs."""
    if not 1 <= count <= MAX_EDITOR_BOTS:
        raise RehearsalError(f"The number of bots must be 1..{MAX_EDITOR_BOTS}.")
    since = timezone.now() - timezone.timedelta(minutes=RUNNING_LIMIT_MINUTES)
    if experiment.rehearsals.filter(status=Rehearsal.Status.RUNNING, created__gte=since).exists():
        raise RehearsalError("A rehearsal of this experiment is running; wait for its report.")
    rehearsal = Rehearsal.objects.create(experiment=experiment, count=count, url=url, created_by=user)
    if background:
        thread = threading.Thread(target=_thread, args=(rehearsal.pk,), name=f"rehearsal-{rehearsal.pk}", daemon=True)
        transaction.on_commit(thread.start)
    else:
        run(rehearsal.pk)
        rehearsal.refresh_from_db()
    return rehearsal


def _thread(rehearsal_id: int) -> None:
    close_old_connections()
    try:
        run(rehearsal_id)
    finally:
        close_old_connections()


def run(rehearsal_id: int) -> None:
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
