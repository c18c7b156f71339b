"""Writes of the participant runner. Each service owns its transaction and locks the
Session (or Ticket) row it changes; handlers and callbacks run inside, so a failure
anywhere stores nothing (STYLE.md 3). Services are keyword-only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from project.core.rows import Select
from runner import progress, selectors
from runner.errors import NoRunError, TicketError
from runner.handlers import BaseHandler, Page, get_handler
from runner.models import Experiment, Response, Session, Subject, Ticket
from runner.personal import email_hmac, prolific_pid_hmac
from runner.responses import build_rows, sanitize_trials
from runner.run_cookie import session_by_token

logger = logging.getLogger("runner.services")
EMAIL_SALT = "runner.email-login"
FIELD_MAX = 100
MAX_SKIPS = 100
TICKET_CODE_MAX = 200  # longer than any code we issue


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


def _ticket_error(code: str) -> TicketError:
    texts = {
        "experiment_not_found": (404, "Study not found", "We could not find this study. Please check the link."),
        "ticket_missing": (
            400,
            "This link is incomplete",
            "The link you followed is missing its access code. Please use the full link you were given.",
        ),
        "ticket_not_found": (
            404,
            "Link not recognised",
            "This link is not valid. Please check that you copied the whole link.",
        ),
        "ticket_wrong_experiment": (
            404,
            "Link not recognised",
            "This link does not belong to this study. Please use the link you were given.",
        ),
        "ticket_used": (
            409,
            "This link has already been used",
            "Each personal link can be used once, and this one has been used already. "
            "If you did not finish, please contact the research team.",
        ),
        "ticket_not_yet_valid": (403, "Not open yet", "This link is not active yet. Please try again later."),
        "ticket_expired": (410, "This link has expired", "This link is no longer active. Thank you for your interest."),
        "experiment_closed": (403, "This study is closed", "This study is not taking part in sessions at the moment."),
    }
    status, title, message = texts[code]
    return TicketError(message, code=code, status=status, title=title)


def _check_ticket(experiment: Experiment | None, ticket: Ticket | None, *, is_staff: bool) -> None:
    now = timezone.now()
    if experiment is None:
        raise _ticket_error("experiment_not_found")
    if ticket is None:
        raise _ticket_error("ticket_not_found")
    if ticket.experiment_id != experiment.pk:
        raise _ticket_error("ticket_wrong_experiment")
    if ticket.type == Ticket.Type.USER and ticket.used:
        raise _ticket_error("ticket_used")
    if ticket.valid_from and now < ticket.valid_from:
        raise _ticket_error("ticket_not_yet_valid")
    if ticket.expires and now >= ticket.expires:
        raise _ticket_error("ticket_expired")
    closed = (
        not experiment.is_active
        or (experiment.start_date and now < experiment.start_date)
        or (experiment.end_date and now >= experiment.end_date)
    )
    if closed and not is_staff:
        raise _ticket_error("experiment_closed")


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
            raise _ticket_error("experiment_not_found")
        raise _ticket_error("ticket_missing")
    with transaction.atomic():
        experiment = selectors.experiment_or_none(experiment_id)
        unusable = "\x00" in ticket_code or len(ticket_code) > TICKET_CODE_MAX  # PostgreSQL refuses NUL
        ticket = None if unusable else Ticket.objects.select_for_update().filter(code=ticket_code).first()
        if resume_token and ticket is not None and experiment is not None and ticket.experiment_id == experiment.pk:
            existing = Session.objects.filter(run_token=resume_token, ticket=ticket, end__isnull=True).first()
            if existing is not None:
                return existing
        _check_ticket(experiment, ticket, is_staff=is_staff)
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
        if ticket.type == Ticket.Type.USER:
            ticket.used = True
            ticket.save(update_fields=["used"])
        if ticket.type == Ticket.Type.GROUP:
            _attach_to_group(session=session, ticket=ticket)
        progress.enter(session, 1)
        session.save()
    return session


def _attach_to_group(*, session: Session, ticket: Ticket) -> None:
    try:
        from groups import services as group_services
    except ImportError:
        return
    attach = getattr(group_services, "attach_participant", None)
    if attach is None:
        return
    try:
        attach(session=session, ticket=ticket)
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


def apply_subject_fields(*, session: Session, fields: dict[str, Any], explicit: bool = False) -> None:
    """Store personal fields on the session's Subject through the data policy (encrypted
    at rest, with the email/Prolific HMACs). Sets ``Session.age`` from a date of birth.

    ``explicit`` (a callback asking to store a field) first refuses fields the policy
    drops. Raises ``runner.policy.PolicyViolation`` naming the field. Caller holds the lock.
    """
    experiment = session.experiment
    try:
        from runner import policy
    except ImportError:
        policy = None
    if policy is not None and explicit:
        for name in fields:
            policy.store_forbidden_check(experiment, "subject", name)
    clean = policy.sanitize_subject_fields(experiment, fields) if policy is not None else dict(fields)
    subject = session.subject
    if subject is None:
        subject = Subject.objects.create()
        session.subject = subject
    age = clean.pop("age", None)
    for name, value in clean.items():
        setattr(subject, name, value if value is not None or name == "dob" else "")
    if "email" in clean:
        subject.email_hmac = email_hmac(fields["email"]) if clean["email"] else ""
        subject.email_verified = False
    if "prolific_pid" in clean:
        subject.prolific_pid_hmac = prolific_pid_hmac(fields["prolific_pid"]) if clean["prolific_pid"] else ""
    subject.save()
    if age is None and isinstance(clean.get("dob"), date):
        age = _age(clean["dob"], timezone.localdate())
    if age is not None:
        session.age = age
        session.save(update_fields=["age", "subject"])


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass
class SubmitResult:
    """``kind``: ``stored`` (moved on), ``stay`` (same visit, e.g. email sent),
    ``duplicate`` (this visit was already stored), ``stale`` (not the current visit: nothing
    stored), ``invalid`` (form errors; ``form``/``page`` to re-render)."""

    kind: str
    form: Any = None
    page: Any = None


@dataclass(frozen=True)
class Submission:
    """One POSTed visit, as ``submit_form`` (and ``runner.batching``) take it. The run is
    ``session_id``, or (``session_id=None``) the run of ``experiment_id`` whose cookie
    holds ``run_token``: a batch finds the runs of all its answers in one statement."""

    session_id: int | None
    order: int
    visit: int
    nonce: str
    data: Any
    client_time_ms: int | None = None
    tz: str = ""
    absolute_url: Callable[[str], str] = lambda path: path
    experiment_id: int | None = None  # the run's, if the caller knows it (a batch reads its forms sooner)
    run_token: str = ""


@dataclass
class Taken:
    """A valid answer processed in memory (``take``): nothing written yet."""

    session: Session
    page: Page
    outcome: Any
    rows: list
    positions: list
    ident: dict


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
            _send_login_email(session=session, current=current, email=outcome.verify_email, absolute_url=absolute_url)
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


def _send_login_email(*, session: Session, current: dict, email: str, absolute_url: Callable[[str], str]) -> None:
    from django.urls import reverse

    token = signing.dumps({"s": session.pk, "o": current["order"], "n": current["nonce"]}, salt=EMAIL_SALT)
    link = absolute_url(reverse("runner:verify_email", args=[session.experiment_id, token]))
    title = session.experiment.title
    body = (
        f"Hello,\n\nplease open this link to confirm your email address and continue the study "
        f'"{title}":\n\n{link}\n\nIf you did not ask for this, you can ignore this message.\n'
    )
    transaction.on_commit(lambda: send_mail(f"Confirm your email for {title}", body, None, [email]))


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
        subject = session.subject
        returning = None
        if subject.email_hmac:
            returning = (
                Subject.objects.filter(email_hmac=subject.email_hmac, email_verified=True)
                .exclude(pk=subject.pk)
                .order_by("created")
                .first()
            )
        if returning is not None:
            Response.objects.filter(session=session).update(subject=returning)
            session.subject = returning
            session.save(update_fields=["subject"])
            if not subject.sessions.exists():
                subject.delete()
        else:
            subject.email_verified = True
            subject.save(update_fields=["email_verified"])
        position = selectors.position_at(selectors.positions(session.experiment), payload["o"])
        Response.objects.bulk_create(
            [
                Response(
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
            ],
            ignore_conflicts=True,
        )
        session.state["last_done"] = {"order": current["order"], "visit": current["visit"], "nonce": current["nonce"]}
        progress.advance(session, position.order)
        session.save()
    return session


def request_loop_exit(*, session_id: int) -> None:
    """The experimenter's exit-loop signal: the session's current loop ends at its next
    loop decision. Locks the Session row."""
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        session.state["exit_loop"] = True
        session.save(update_fields=["state"])
