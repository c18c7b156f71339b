"""CSRF tokens made with one read of the system's random source.

Django's ``get_token`` masks the cookie's secret with ``get_random_string(32)``, which
reads ``os.urandom`` once per character: 32 system calls per token, each of which
releases the GIL and must win it back. On an idle server that costs nothing; right after
a step starts, when a burst of reloads meets the server's fan-out to every page, each
release may wait a switch interval for the GIL. A profile at N=10 put 1.97 s of 5.46 s of
120 reloads' wall time in those reads (docs/performance.md, "Session 14").

``get_token`` here does what Django's does (the same token format, the same cookie
flags, checked by Django's own ``CsrfViewMiddleware``) with a mask drawn from one read of
``secrets.token_bytes``. ``context_processor`` puts it behind ``{% csrf_token %}``: it is
listed after Django's built-in CSRF processor, so its ``csrf_token`` is the one templates see.
"""

from __future__ import annotations

import secrets

from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
from django.utils.functional import SimpleLazyObject

_CHARS = CSRF_ALLOWED_CHARS
_LIMIT = 256 - 256 % len(_CHARS)  # bytes from here up would favour the first characters
_INDEX = {c: i for i, c in enumerate(_CHARS)}


def random_string(length: int = CSRF_SECRET_LENGTH) -> str:
    """``length`` characters drawn uniformly from Django's CSRF alphabet, from one read of
    ``2 * length`` random bytes (rarely more: bytes past the alphabet's last whole multiple
    are dropped, so no character is more likely than another)."""
    drawn = ""
    while len(drawn) < length:
        drawn += "".join(_CHARS[b % len(_CHARS)] for b in secrets.token_bytes(2 * length) if b < _LIMIT)
    return drawn[:length]


def get_token(request) -> str:
    """A masked CSRF token for ``request``, as ``django.middleware.csrf.get_token`` makes it:
    the cookie's secret (a new one if the request has none), marked to be sent back, and
    masked with a fresh random string."""
    secret = request.META.get("CSRF_COOKIE")
    if secret is None:
        secret = request.META["CSRF_COOKIE"] = random_string()
    request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    mask = random_string()
    return mask + "".join(_CHARS[(_INDEX[s] + _INDEX[m]) % len(_CHARS)] for s, m in zip(secret, mask, strict=True))


def context_processor(request) -> dict:
    """``csrf_token`` for templates, made only if a template uses it (as Django's)."""
    return {"csrf_token": SimpleLazyObject(lambda: get_token(request))}
