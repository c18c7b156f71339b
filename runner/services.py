"""Writes of the participant runner. Each service owns its transaction and locks the
Session (or Ticket) row it changes; handlers and callbacks run inside, so a failure
anywhere stores nothing (STYLE.md 3). Services are keyword-only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from project.core.rows import Select
from runner import progress, selectors
from runner.admission import check_ticket, locked_ticket, ticket_error
from runner.errors import NoRunError, TicketError
from runner.handlers import BaseHandler, Page, get_handler
from runner.models import Response, Session, Subject, Ticket
from runner.personal import prolific_pid_hmac
from runner.responses import build_rows, sanitize_trials
from runner.run_cookie import session_by_token
from runner.subjects import EMAIL_SALT, apply_subject_fields, send_login_email, take_over_returning
from runner.submissions import Submission, SubmitResult, Taken

logger = logging.getLogger("runner.services")
FIELD_MAX = 100
MAX_SKIPS = 100


@dataclass(frozen=True)
class Referral:
    """Participant-pool parameters of a start link (``sona``, ``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``)."""

    sona: str = ""
    prolific_pid: str = ""
    study_id: str = ""
    session_id: str = ""


_LOCKED_SESSION = Select(Session, related=("experiment",), where='t0."id" = %s', lock="FOR UPDATE OF t0")


def _lock_session(session_id: int) -> Session:
    """The Session row, locked (``OF t0``: lock the run only, not its experiment). The
    subject is read when used: decrypting its fields on every answer costs more than
    the query that reads it in the few places that need it. Raises ``Session.DoesNotExist``."""
    return _LOCKED_SESSION.get(session_id)


def start_run(
    *,
    experiment_id: int,
    ticket_code: str,
    referral: Referral = Referral(),
    is_staff: bool = False,
    is_bot: bool = False,
    user_agent: str = "",
    resume_token: str | None = None,
) -> Session:
    """Start (or resume) a run from a start link; returns the Session.

    Locks the Ticket row (a user ticket starts one session only). Resumes instead of
    starting again when ``resume_token`` (this browser's run cookie) names an unfinished
    session of the same ticket. Creates a Subject (or reuses the one with the same
    Prolific id; ``is_bot`` flags it as a scripted participant's), marks a user ticket used,
    attaches a ``group`` ticket's session via ``groups.services.attach_participant`` and
    enters the first form.
    Raises :class:`TicketError` (codes in its docstring) or ``CallbackFailed``.
    """
    if not ticket_code:
        if selectors.experiment_or_none(experiment_id) is None:
            raise ticket_error("experiment_not_found")
        raise ticket_error("ticket_missing")
    with transaction.atomic():
        experiment = selectors.experiment_or_none(experiment_id)
        ticket = locked_ticket(ticket_code)
        existing = _resumable(experiment, ticket, resume_token)
        if existing is not None:
            return existing
        check_ticket(experiment, ticket, is_staff=is_staff)
        session = _new_session(experiment, ticket, referral, is_staff=is_staff, is_bot=is_bot, user_agent=user_agent)
        if ticket.type == Ticket.Type.USER:
            ticket.used = True
            ticket.save(update_fields=["used"])
        if ticket.type == Ticket.Type.GROUP:
            _attach_to_group(session=session, ticket=ticket)
        progress.enter(session, 1)
        session.save()
    return session


def _resumable(experiment, ticket: Ticket | None, resume_token: str | None) -> Session | None:
    """The unfinished run of this ticket that this browser's run cookie names, if any."""
    if not resume_token or ticket is None or experiment is None or ticket.experiment_id != experiment.pk:
        return None
    return Session.objects.filter(run_token=resume_token, ticket=ticket, end__isnull=True).first()


def _new_session(
    experiment, ticket: Ticket, referral: Referral, *, is_staff: bool, is_bot: bool, user_agent: str
) -> Session:
    """The new run with its Subject: the one with the same Prolific id, or a new one."""
    subject = (
        Subject.objects.filter(prolific_pid_hmac=prolific_pid_hmac(referral.prolific_pid)).first()
        if referral.prolific_pid
        else None
    )
    session = Session.objects.create(
        experiment=experiment,
        ticket=ticket,
        subject=subject or Subject.objects.create(),
        is_preview=is_staff,
        is_bot=is_bot,
        sona_code=referral.sona[:FIELD_MAX],
        prolific_study_id=referral.study_id[:FIELD_MAX],
        prolific_session_id=referral.session_id[:FIELD_MAX],
        user_agent=user_agent[:300],
    )
    if referral.prolific_pid and subject is None:
        apply_subject_fields(session=session, fields={"prolific_pid": referral.prolific_pid[:FIELD_MAX]})
    return session


#: Puts a run started with a group ticket into its group session: registered by the
#: groups app at start-up (``GroupsConfig.ready``), so that the runner imports no groups
#: module here (the groups app imports the runner's services).
_group_attach = None


def use_group_attach(attach) -> None:
    global _group_attach
    _group_attach = attach


def _attach_to_group(*, session: Session, ticket: Ticket) -> None:
    if _group_attach is None:  # the groups app is not installed
        raise TicketError("Group sessions are not available on this server.", code="group_unavailable", status=409)
    try:
        _group_attach(session=session, ticket=ticket)
    except Exception as exc:
        code = getattr(exc, "code", None)
        if not code:
            raise
        raise TicketError(
            str(getattr(exc, "message", "")) or "This group session cannot be joined right now.",
            code=f"group_{code}",
            status=409,
            title="Cannot join this group session",
        ) from exc


def _skip_action(session: Session) -> str | None:
    """What the handler of the visit on screen says about showing it (``skip_visit``)."""
    current = session.state.get("current")
    if not current or session.state.get("finished"):
        return None
    positions = selectors.positions(session.experiment)
    position = selectors.position_at(positions, current["order"])
    if position is None:
        return None
    handler = get_handler(position.handler)
    if type(handler).skip_visit is BaseHandler.skip_visit:
        return None
    page = Page(
        session=session,
        position=position,
        current=current,
        form_questions=selectors.form_questions(position.form),
        total_forms=len(positions),
    )
    return handler.skip_visit(page)


def ensure_current(*, session_id: int) -> Session:
    """Make sure the session has a visit on screen: enter form 1 if the state is empty,
    move on when the handler's ``skip_visit`` says so, and stamp ``served_at`` the first
    time the visit is shown. Locks the Session row only when something changes.
    Raises ``CallbackFailed``."""
    session = Session.objects.select_related("experiment", "subject").get(pk=session_id)
    current = session.state.get("current")
    settled = session.state.get("finished") or (current and current.get("served_at"))
    if settled and not _skip_action(session):
        return session  # nothing to write: no lock, no transaction
    with transaction.atomic():
        session = _lock_session(session_id)
        state = session.state
        changed = False
        if not state.get("finished") and not state.get("current"):
            progress.enter(session, session.current_order or 1)
            changed = True
        for _ in range(MAX_SKIPS):
            action = _skip_action(session)
            if not action:
                break
            progress.advance(session, state["current"]["order"], leave_loop=action == "leave_loop")
            changed = True
        current = state.get("current")
        if current and not current.get("served_at"):
            current["served_at"] = timezone.now().isoformat()
            changed = True
        if changed:
            session.save()
    return session


def submit_form(*, session_id: int, order: int, visit: int, nonce: str, data, client_time_ms: int | None = None,
                tz: str = "", absolute_url: Callable[[str], str] = lambda path: path) -> SubmitResult:  # fmt: skip
    """Store one visit's answers and move on. Locks the Session row.

    Refuses (stores nothing) a POST whose (order, visit, nonce) is not the visit on screen;
    a repeat of the last stored visit is reported as ``duplicate``. Stores one Response per
    question and per jsPsych trial (unique per session/form_order/visit/item), applies
    subject fields and the data policy, then the loop rule and the next form's callbacks,
    then the handler's ``Outcome.batch_step`` (as a batch of one) and ``before_commit``
    steps, all in one transaction. ``runner.batching`` stores many answers arriving
    together the same way in one transaction.
    Raises ``CallbackFailed``, ``runner.policy.PolicyViolation`` or the ``RunError`` of a
    handler or batch step refusing the answer.
    """
    return submit(Submission(session_id, order, visit, nonce, data, client_time_ms, tz, absolute_url))


def submit(submission: Submission) -> SubmitResult:
    """``submit_form`` of a :class:`Submission`."""
    data, absolute_url = submission.data, submission.absolute_url
    with transaction.atomic():
        session = _lock_session(_session_id(submission))
        taken = take(session, submission)
        if isinstance(taken, SubmitResult):
            return taken
        outcome = taken.outcome
        Response.objects.bulk_create(taken.rows, ignore_conflicts=True)
        if outcome.subject_fields:
            apply_subject_fields(session=session, fields=outcome.subject_fields)
        if outcome.verify_email:
            current = session.state["current"]
            current["email_sent"] = True
            send_login_email(session=session, current=current, email=outcome.verify_email, absolute_url=absolute_url)
        if outcome.stay:
            session.save()
            _before_commit(outcome)
            return SubmitResult("stay")
        move_on(taken, data)
        session.save()
        _before_commit(outcome)
    return SubmitResult("stored")


def _session_id(submission: Submission) -> int:
    """The id of the submission's run; ``NoRunError`` when its token names no run of its experiment."""
    if submission.session_id is not None:
        return submission.session_id
    session = session_by_token(submission.run_token, submission.experiment_id) if submission.run_token else None
    if session is None:
        raise NoRunError.in_this_browser()
    return session.pk


def take(session: Session, submission: Submission, *, positions=None, questions=None) -> Taken | SubmitResult:
    """Check and process one POSTed visit of the locked ``session`` in memory: the visit on
    screen, the handler's form and ``process``, the rows to store. Writes nothing (the
    session instance gets the client's time zone and clock). ``positions`` (the
    experiment's) and ``questions(form)`` are for callers that read them once for many."""
    state = session.state
    current = state.get("current")
    ident = {"order": submission.order, "visit": submission.visit, "nonce": submission.nonce}
    if state.get("finished") or not current or any(current.get(k) != v for k, v in ident.items()):
        return SubmitResult("duplicate" if state.get("last_done") == ident else "stale")
    positions = positions if positions is not None else selectors.positions(session.experiment)
    position = selectors.position_at(positions, submission.order)
    if position is None or position.order != submission.order:  # the experiment changed under the run
        return SubmitResult("stale")
    handler = get_handler(position.handler)
    form_questions = (questions or selectors.form_questions)(position.form)
    page = Page(session=session, position=position, current=current, form_questions=form_questions,
                total_forms=len(positions))  # fmt: skip
    form = handler.build_form(page, submission.data)
    if not form.is_valid():
        return SubmitResult("invalid", form=form, page=page)
    outcome = handler.process(page, form, submission.data)
    now = timezone.now()
    _record_client(session, tz=submission.tz, client_time_ms=submission.client_time_ms, now=now)
    trials = sanitize_trials(session.experiment, outcome.trials)
    rows = build_rows(page=page, outcome=outcome, trials=trials, now=now, client_time_ms=submission.client_time_ms)
    return Taken(session, page, outcome, rows, positions, ident)


def move_on(taken: Taken, data) -> None:
    """After the visit's rows: mark it done and enter the next visit (the loop rule and the
    next form's callbacks) or end the run. Sets the session instance; the caller saves."""
    session, outcome, position = taken.session, taken.outcome, taken.page.position
    session.state["last_done"] = taken.ident
    if outcome.end_session:
        progress.finish(session, declined=True)
    else:
        leave = outcome.leave_loop or (data.get("_action") == "break_loop" and position.break_loop_button)
        progress.advance(session, position.order, leave_loop=leave, positions=taken.positions)


def _before_commit(outcome) -> None:
    """The handler's last steps, still inside the transaction: its ``batch_step`` as a
    batch of one (raising its refusal), then ``Outcome.before_commit``."""
    step = outcome.batch_step
    if step is not None:
        checked = step.check([step.item])
        if checked.refusals[0] is not None:
            raise step.refuse(checked.refusals[0])
        checked.write()
        checked.announce()
    for call in outcome.before_commit:
        call()


def _record_client(session: Session, *, tz: str, client_time_ms: int | None, now) -> None:
    if tz and tz != session.timezone:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(tz[:64])
            session.timezone = tz[:64]
        except (ValueError, KeyError, OSError):
            pass
    if client_time_ms is not None and session.clock_offset_ms is None:
        session.clock_offset_ms = float(client_time_ms - now.timestamp() * 1000)


def verify_email(*, token: str) -> Session:
    """Confirm the emailed link of ``form_login_w_email`` and move the session on.

    Locks the Session row. A returning participant (an earlier Subject with the same
    verified email) takes this session and its answers over. Opening the link twice
    is harmless. Raises ``signing.BadSignature`` (or ``SignatureExpired``) for a bad link.
    """
    payload = signing.loads(token, salt=EMAIL_SALT, max_age=getattr(settings, "EMAIL_LOGIN_MAX_AGE", 2 * 24 * 3600))
    with transaction.atomic():
        session = _lock_session(payload["s"])
        current = session.state.get("current") or {}
        if current.get("order") != payload["o"] or current.get("nonce") != payload["n"]:
            return session  # already confirmed (or moved on): nothing to do
        take_over_returning(session)
        position = selectors.position_at(selectors.positions(session.experiment), payload["o"])
        _record_verified(session, position, current)
        session.state["last_done"] = {"order": current["order"], "visit": current["visit"], "nonce": current["nonce"]}
        progress.advance(session, position.order)
        session.save()
    return session


def _record_verified(session: Session, position, current: dict) -> None:
    """The ``email_verified`` answer of the visit whose link was confirmed."""
    response = Response(
        session=session,
        subject=session.subject,
        experiment=session.experiment,
        form=position.form,
        form_order=position.order,
        visit=current["visit"],
        item="email_verified",
        value=True,
        served_at=parse_datetime(current.get("served_at") or ""),
        submitted_at=timezone.now(),
    )
    Response.objects.bulk_create([response], ignore_conflicts=True)


def request_loop_exit(*, session_id: int) -> None:
    """The experimenter's exit-loop signal: the session's current loop ends at its next
    loop decision. Locks the Session row."""
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        session.state["exit_loop"] = True
        session.save(update_fields=["state"])
