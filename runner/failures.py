"""Timelines that failed in the browser (issue 17): record, count, list and skip.

A participant's page that cannot run its jsPsych timeline (unknown plugin, unknown
function or timeline builder, an exception in a plugin or a registered function, media
that did not load) reports it here (``runner.views.jspsych.report_failure``). Each
report is logged on logger ``runner.jspsych`` with the experiment, the form, the
session's study pseudonym and the message (no ticket, cookie or personal field), stored
as a :class:`TimelineFailure` (counted on the experiment's editor page, listed on the
group console) and nothing else of that page is stored. The experimenter may then let
that run skip the form (:func:`skip_form`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from runner import progress, selectors
from runner.errors import RunError
from runner.models import Session, TimelineFailure

logger = logging.getLogger("runner.jspsych")

KINDS = frozenset(TimelineFailure.Kind.values)


@dataclass(frozen=True)
class Report:
    """What the page posts: which visit failed (``order``, ``visit``, ``nonce``), how, and the text."""

    order: int
    visit: int
    nonce: str
    kind: str
    message: str


class FailureRefused(RunError):
    """A report or a skip that changes nothing: codes ``bad_report``, ``not_current``,
    ``rate_limited``, ``already_skipped``."""


def _clean(text: str) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in str(text).replace("\x00", ""))
    return text.strip()[: TimelineFailure.MESSAGE_MAX]


def _rate_limited(session: Session) -> bool:
    """True once ``JSPSYCH_FAILURES_PER_MINUTE`` reports came from this run within a minute
    (counted in the cache under a digest of the run token, never the token itself)."""
    key = "jspsych-failures:" + hashlib.sha256(session.run_token.encode()).hexdigest()[:24]
    cache.add(key, 0, timeout=60)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=60)
        count = 1
    return count > settings.JSPSYCH_FAILURES_PER_MINUTE


def session_pseudonym(session: Session) -> str:
    """The session's study pseudonym, as exports show it (exports.pseudonyms)."""
    from exports.pseudonyms import pseudonym, scope_for, subject_key

    return pseudonym(subject_key(session.subject_id, session.pk), scope_for(session.experiment))


def record(*, session: Session, report: Report) -> TimelineFailure:
    """Store and log one failure of the visit on screen of ``session``.

    Raises :class:`FailureRefused` (nothing stored, nothing logged) for a report of a
    visit that is not the one on screen, an unknown kind, or the run's reports past the
    rate limit. Writes one row; takes no lock."""
    current = session.state.get("current") or {}
    if report.kind not in KINDS:
        raise FailureRefused("Unknown kind of failure.", code="bad_report")
    if (current.get("order"), current.get("visit"), current.get("nonce")) != (report.order, report.visit,
                                                                             report.nonce):  # fmt: skip
        raise FailureRefused("That page is no longer the one on screen.", code="not_current", status=409)
    if _rate_limited(session):
        raise FailureRefused("Too many reports from this page.", code="rate_limited", status=429)
    position = selectors.position_at(selectors.positions(session.experiment), report.order)
    if position is None:
        raise FailureRefused("That page is no longer the one on screen.", code="not_current", status=409)
    group_session_id = _group_session_id(session)
    failure = TimelineFailure.objects.create(
        experiment=session.experiment, session=session, form=position.form, form_order=report.order,
        visit=report.visit, nonce=report.nonce[:64], group_session_id=group_session_id, kind=report.kind,
        message=_clean(report.message) or "(no message)",
    )  # fmt: skip
    logger.warning(
        "jsPsych timeline failed: experiment=%s form=%s order=%s visit=%s session=%s group_session=%s kind=%s "
        "message=%s", session.experiment.slug, position.form.name, report.order, report.visit,
        session_pseudonym(session), group_session_id or "-", report.kind, failure.message,
    )  # fmt: skip
    return failure


def _group_session_id(session: Session) -> int | None:
    from groups.models import Membership

    return Membership.objects.filter(session=session).values_list("group_session_id", flat=True).first()


def skip_form(*, failure_id: int, by) -> Session:
    """Let the run of ``failure_id`` skip the form that failed: its visit ends with nothing
    stored and the run moves on as after an answer (loop rules apply). Locks the Session
    row; marks every open failure of that visit skipped. Raises :class:`FailureRefused`
    (code ``not_current``) when the run has left that visit, ``already_skipped`` when done;
    ``CallbackFailed`` from the next form's stimulus script rolls everything back."""
    with transaction.atomic():
        failure = TimelineFailure.objects.select_related("session").get(pk=failure_id)
        if failure.skipped_at is not None:
            raise FailureRefused("This form was already skipped for that run.", code="already_skipped", status=409)
        session = Session.objects.select_for_update().select_related("experiment").get(pk=failure.session_id)
        current = session.state.get("current") or {}
        if (current.get("order"), current.get("visit"), current.get("nonce")) != (
            failure.form_order, failure.visit, failure.nonce,
        ):  # fmt: skip
            raise FailureRefused("That run is no longer on this form.", code="not_current", status=409)
        progress.advance(session, failure.form_order)
        session.save()
        TimelineFailure.objects.filter(session_id=session.pk, form_order=failure.form_order, visit=failure.visit,
                                       nonce=failure.nonce, skipped_at=None).update(
            skipped_at=timezone.now(), skipped_by=by if getattr(by, "pk", None) else None)  # fmt: skip
    logger.warning(
        "jsPsych form skipped by the experimenter: experiment=%s order=%s visit=%s session=%s",
        session.experiment.slug,
        failure.form_order,
        failure.visit,
        session_pseudonym(session),
    )
    return session


def counts(experiment_id: int) -> dict:
    """``{"total": N, "open": M}`` failures of an experiment (open: not skipped)."""
    rows = TimelineFailure.objects.filter(experiment_id=experiment_id)
    return {"total": rows.count(), "open": rows.filter(skipped_at=None).count()}


def recent(*, experiment_id: int | None = None, group_session_id: int | None = None, limit: int = 20) -> list:
    """The latest failures of an experiment or a group session, newest first."""
    rows = TimelineFailure.objects.select_related("form")
    if experiment_id is not None:
        rows = rows.filter(experiment_id=experiment_id)
    if group_session_id is not None:
        rows = rows.filter(group_session_id=group_session_id)
    return list(rows[:limit])
