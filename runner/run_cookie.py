"""The run cookie: which Session a browser is running, one cookie per experiment.

Name ``f"{settings.RUN_COOKIE_NAME}{experiment_id}"`` (e.g. ``ensemble_run7``); value
``Session.run_token`` (256 random bits from ``secrets``: a bearer secret, so signing it
would add nothing); HttpOnly, SameSite=Lax, path ``/`` (so the group WebSocket at
``/ws/group/...`` receives it too), Secure on HTTPS, ``RUN_COOKIE_MAX_AGE`` seconds
(default 14 days). One browser can run different experiments side by side.

Other apps (the participant WebSocket) read it with :func:`session_from_cookies`,
which takes the plain ``{name: value}`` cookie mapping (``scope["cookies"]`` in Channels).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from django.conf import settings

TOKEN_MAX_LENGTH = 64


def cookie_name(experiment_id: int) -> str:
    return f"{settings.RUN_COOKIE_NAME}{experiment_id}"


def max_age() -> int:
    return int(getattr(settings, "RUN_COOKIE_MAX_AGE", 14 * 24 * 3600))


def set_run_cookie(response, *, request, experiment_id: int, run_token: str) -> None:
    """Attach the run cookie for ``experiment_id`` to ``response``."""
    response.set_cookie(
        cookie_name(experiment_id),
        run_token,
        max_age=max_age(),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
        path="/",
    )


def read_run_token(cookies: Mapping[str, str], experiment_id: int) -> str | None:
    """The run token in ``cookies`` for this experiment, or None."""
    raw = (cookies or {}).get(cookie_name(experiment_id)) or ""
    raw = raw.strip()
    return raw if raw and len(raw) <= TOKEN_MAX_LENGTH and "\x00" not in raw else None


def session_from_cookies(cookies: Mapping[str, str], experiment_id: int):
    """The runner Session named by the run cookie for ``experiment_id``, or None."""
    token = read_run_token(cookies, experiment_id)
    return session_by_token(token, experiment_id) if token else None


def session_by_token(token: str, experiment_id: int):
    """The runner Session of ``experiment_id`` whose run token is ``token``, or None."""
    return _by_token().first(token, experiment_id)  # the subject (encrypted fields) read when used


@cache  # made at first use: this module is imported before the models are
def _by_token():
    from project.core.rows import Select
    from runner.models import Session

    return Select(
        Session,
        related=("experiment",),
        where='t0."run_token" = %s AND t0."experiment_id" = %s ORDER BY t0."start" DESC LIMIT 1',
    )
