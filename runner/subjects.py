"""The participant's Subject: personal fields stored through the data policy, and the
emailed link that confirms an address (``form_login_w_email``; the link is checked by
``runner.services.verify_email``). Callers hold the Session lock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from runner import policy
from runner.models import Session, Subject
from runner.personal import email_hmac, prolific_pid_hmac

EMAIL_SALT = "runner.email-login"


def apply_subject_fields(*, session: Session, fields: dict[str, Any], explicit: bool = False) -> None:
    """Store personal fields on the session's Subject through the data policy (encrypted
    at rest, with the email/Prolific HMACs). Sets ``Session.age`` from a date of birth.

    ``explicit`` (a callback asking to store a field) first refuses fields the policy
    drops. Raises ``runner.policy.PolicyViolation`` naming the field. Caller holds the lock.
    """
    experiment = session.experiment
    if explicit:
        for name in fields:
            policy.store_forbidden_check(experiment, "subject", name)
    clean = policy.sanitize_subject_fields(experiment, fields)
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
        age = policy.age_on(clean["dob"], timezone.localdate())
    if age is not None:
        session.age = age
        session.save(update_fields=["age", "subject"])


def send_login_email(*, session: Session, current: dict, email: str, absolute_url: Callable[[str], str]) -> None:
    """Email the link that confirms ``email`` for the visit ``current`` (sent on commit)."""
    token = signing.dumps({"s": session.pk, "o": current["order"], "n": current["nonce"]}, salt=EMAIL_SALT)
    link = absolute_url(reverse("runner:verify_email", args=[session.experiment_id, token]))
    title = session.experiment.title
    body = (
        f"Hello,\n\nplease open this link to confirm your email address and continue the study "
        f'"{title}":\n\n{link}\n\nIf you did not ask for this, you can ignore this message.\n'
    )
    transaction.on_commit(lambda: send_mail(f"Confirm your email for {title}", body, None, [email]))


def take_over_returning(session: Session) -> None:
    """After a confirmed address: when an earlier Subject verified the same email, this
    session and its answers become that participant's (the new Subject goes if it has no
    other session); otherwise the session's Subject is marked verified."""
    subject = session.subject
    returning = None
    if subject.email_hmac:
        returning = (
            Subject.objects.filter(email_hmac=subject.email_hmac, email_verified=True)
            .exclude(pk=subject.pk)
            .order_by("created")
            .first()
        )
    if returning is None:
        subject.email_verified = True
        subject.save(update_fields=["email_verified"])
        return
    session.responses.update(subject=returning)
    session.subject = returning
    session.save(update_fields=["subject"])
    if not subject.sessions.exists():
        subject.delete()
