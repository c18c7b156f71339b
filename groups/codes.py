"""Participant and experimenter codes (SPEC section 2).

Codes are ``GROUP_CODE_LENGTH`` characters from ``GROUP_CODE_ALPHABET`` (no
look-alikes) drawn with ``secrets``, typed case-insensitively, and unique among
unexpired group sessions: a new code collides with no live participant code and
no live experimenter code, so the two kinds can never be mistaken for each other.
Wrong attempts are counted per client address in the Django cache.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from .state import GroupError

PARTICIPANT, EXPERIMENTER = "participant", "experimenter"
_STRIP = str.maketrans("", "", " -_.\t")


def normalize_code(raw: str | None) -> str:
    """Upper-case, without spaces or dashes: what a person means by what they typed."""
    return (raw or "").translate(_STRIP).upper()


def looks_like_code(code: str) -> bool:
    alphabet = set(settings.GROUP_CODE_ALPHABET)
    return len(code) == settings.GROUP_CODE_LENGTH and all(c in alphabet for c in code)


def random_code() -> str:
    alphabet = settings.GROUP_CODE_ALPHABET
    return "".join(secrets.choice(alphabet) for _ in range(settings.GROUP_CODE_LENGTH))


def code_in_use(code: str, *, now=None) -> bool:
    from .models import GroupSession

    now = now or timezone.now()
    return (
        GroupSession.objects.filter(expires__gt=now)
        .filter(Q(participant_code=code) | Q(experimenter_code=code))
        .exists()
    )


#: The PostgreSQL advisory lock that makes choosing codes and storing them one step.
CODES_LOCK = 0x67726F7570  # "group"


def new_code(*, avoid: set[str] | frozenset = frozenset(), attempts: int = 50) -> str:
    """A code no unexpired group session uses (as either kind) and not in ``avoid``.
    Call it in the transaction that stores the code: until that transaction ends, no
    other one can choose a code (on PostgreSQL an advisory lock, ``CODES_LOCK``; SQLite
    runs one write transaction at a time), so two sessions started at the same moment
    never get the same code.

    Raises ``GroupError(code="codes_exhausted")`` if ``attempts`` draws all collide.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        if not connection.in_atomic_block:
            raise RuntimeError("new_code() must run in the transaction that stores the code")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CODES_LOCK])
    for _ in range(attempts):
        code = random_code()
        if code not in avoid and not code_in_use(code):
            return code
    raise GroupError("Could not find a free group code; try again later.", code="codes_exhausted")


# ---- rate limiting of wrong attempts --------------------------------------------


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def _key(kind: str, address: str) -> str:
    return f"groups:code-fail:{kind}:{address}"


def is_rate_limited(*, kind: str, address: str) -> bool:
    """True once ``CODE_ATTEMPTS_PER_MINUTE`` wrong codes came from ``address`` within a minute."""
    return (cache.get(_key(kind, address)) or 0) >= settings.CODE_ATTEMPTS_PER_MINUTE


def record_failure(*, kind: str, address: str) -> int:
    """Count one wrong code; the window starts with the first failure and lasts 60 s."""
    key = _key(kind, address)
    cache.add(key, 0, timeout=60)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=60)
        return 1
