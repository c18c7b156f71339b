"""Personal-field helpers: keyed lookups of encrypted subject fields.

Email and Prolific id are stored encrypted (Fernet, ``FIELD_ENCRYPTION_KEY``), so they
cannot be searched. Beside each we store an HMAC (key ``PSEUDONYM_KEY``, kept outside the
database) of the normalised value; lookups compute the same HMAC and match on it.
Set the HMAC whenever the field is set (``subject.email_hmac = email_hmac(email)``).
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from runner.models import Subject


def normalize_email(email: str) -> str:
    """Trimmed and lower-cased: the form the HMAC is taken of."""
    return (email or "").strip().lower()


def _keyed(purpose: str, text: str) -> str:
    key = str(settings.PSEUDONYM_KEY).encode()
    return hmac.new(key, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()


def email_hmac(email: str) -> str:
    """HMAC-SHA256 hex of the normalised email ('' for an empty email)."""
    email = normalize_email(email)
    return _keyed("email", email) if email else ""


def prolific_pid_hmac(pid: str) -> str:
    """HMAC-SHA256 hex of a Prolific participant id ('' for an empty id)."""
    pid = (pid or "").strip()
    return _keyed("prolific", pid) if pid else ""


def subject_by_email(email: str) -> Subject | None:
    """The subject registered with ``email`` (case and surrounding spaces ignored), or None.

    Matches on ``email_hmac``; when several subjects share it, the oldest wins.
    """
    digest = email_hmac(email)
    if not digest:
        return None
    return Subject.objects.filter(email_hmac=digest).order_by("created").first()


def subject_by_prolific_pid(pid: str) -> Subject | None:
    """The subject with this Prolific participant id, or None."""
    digest = prolific_pid_hmac(pid)
    if not digest:
        return None
    return Subject.objects.filter(prolific_pid_hmac=digest).order_by("created").first()
