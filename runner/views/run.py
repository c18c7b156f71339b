"""Start link, the run page (GET shows the current visit, POST stores it, then redirects),
and the emailed login link."""

from __future__ import annotations

from django.contrib import messages
from django.core import signing
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from runner import batching, bot_token, selectors, services
from runner.errors import NoRunError, RunError
from runner.models import Session
from runner.policy import InvalidPolicy, PolicyViolation
from runner.run_cookie import read_run_token, set_run_cookie

from .pages import error_page, render_visit

GROUP_ATTACH_URL = "/group/session/attach/participant/?experiment={id}"
STALE_MESSAGE = "That page had already been sent, so we brought you back to where you are in the study."


#: Largest integer a browser sends exactly (``Number.MAX_SAFE_INTEGER``); also fits a BigIntegerField.
MAX_CLIENT_INT = 2**53 - 1


def _int(value, default=None):
    """An integer from a form field; ``default`` for anything else (including huge values)."""
    try:
        number = int(str(value)[:20])
    except (TypeError, ValueError):
        return default
    return number if -MAX_CLIENT_INT <= number <= MAX_CLIENT_INT else default


def _param(request, name: str) -> str:
    """A query parameter as text without NUL characters (PostgreSQL cannot store them)."""
    return request.GET.get(name, "").replace("\x00", "").strip()


@never_cache
@require_GET
def start(request, experiment_id: int):
    """``/run/<id>/start/?tc=…``: validate the ticket, start (or resume) a run, set the run cookie."""
    code = request.GET.get("tc", "").strip()
    if not code:
        experiment = selectors.experiment_or_none(experiment_id)
        if experiment is not None and experiment.is_group:
            return redirect(GROUP_ATTACH_URL.format(id=experiment_id))
    referral = services.Referral(
        sona=_param(request, "sona"),
        prolific_pid=_param(request, "PROLIFIC_PID"),
        study_id=_param(request, "STUDY_ID"),
        session_id=_param(request, "SESSION_ID"),
    )
    try:
        session = services.start_run(
            experiment_id=experiment_id,
            ticket_code=code,
            referral=referral,
            is_staff=bool(request.user.is_authenticated and request.user.is_staff),
            is_bot=bot_token.is_bot(_param(request, "bot"), experiment_id),
            user_agent=request.META.get("HTTP_USER_AGENT", "").replace("\x00", ""),
            resume_token=read_run_token(request.COOKIES, experiment_id),
        )
    except RunError as exc:
        return error_page(request, exc)
    response = redirect("runner:run", experiment_id=experiment_id)
    set_run_cookie(response, request=request, experiment_id=experiment_id, run_token=session.run_token)
    return response


#: Serves the page of a group run by a shorter path when it can, else returns None
#: (``groups.live_page.serve``, registered from ``GroupsConfig.ready()``, so that the
#: runner imports no groups module).
_group_page = None


def use_group_page(serve) -> None:
    global _group_page
    _group_page = serve


@never_cache
@require_http_methods(["GET", "POST"])
def run_page(request, experiment_id: int):
    """``/run/<id>/``: the current visit. POST carries ``_order``, ``_visit`` and ``_nonce``."""
    if request.method == "GET" and _group_page is not None and selectors.is_group(experiment_id):
        served = _group_page(request, experiment_id)  # a reload of the live page: reads only
        if served is not None:
            return served
    if request.method == "POST" and selectors.is_group(experiment_id):
        # A live group's answers come together: stored in batches (runner/batching.py),
        # which find their runs by the cookies' tokens, all in one statement.
        token = read_run_token(request.COOKIES, experiment_id)
        if token is None:
            return error_page(request, NoRunError.in_this_browser())
        return _post(request, experiment_id, run_token=token)
    session = selectors.session_for_request(request, experiment_id)
    if session is None:
        return error_page(request, NoRunError.in_this_browser())
    if request.method == "POST":
        return _post(request, experiment_id, session=session)
    with selectors.reads_once():  # the visit is resolved in several places: its forms are read once
        try:
            session = services.ensure_current(session_id=session.pk)
        except RunError as exc:
            return error_page(request, exc, experiment=session.experiment)
        return render_visit(request, session)


def _post(request, experiment_id: int, *, session=None, run_token: str = ""):
    """Store the POSTed visit of ``session``, or (batched) of the run whose token the cookie holds."""
    submission = submission_from(request, experiment_id, session=session, run_token=run_token)
    try:
        result = batching.submit(submission, key=experiment_id if session is None else None)
    except (PolicyViolation, InvalidPolicy, RunError) as exc:
        experiment = session.experiment if session is not None else selectors.experiment_or_none(experiment_id)
        return error_page(request, _as_run_error(exc), experiment=experiment)
    if result.kind == "invalid":
        session = selectors.session_for_request(request, experiment_id)  # as stored now
        if session is None:
            return error_page(request, NoRunError.in_this_browser())
        return render_visit(request, session, page=result.page, form=result.form)
    if result.kind == "stale":
        messages.warning(request, STALE_MESSAGE)
    return redirect("runner:run", experiment_id=experiment_id)


def submission_from(request, experiment_id: int, *, session, run_token: str) -> services.Submission:
    """The POSTed visit as the services take it (the hidden fields the page sends); also
    the live group page's answer route (``groups.live_views``)."""
    post = request.POST
    return services.Submission(
        session_id=session.pk if session is not None else None,
        run_token=run_token,
        order=_int(post.get("_order"), -1),
        visit=_int(post.get("_visit"), -1),
        nonce=post.get("_nonce", ""),
        data=post,
        client_time_ms=_int(post.get("_client_ms")),
        tz=post.get("_tz", "").replace("\x00", "").strip(),
        absolute_url=request.build_absolute_uri,
        experiment_id=experiment_id,
    )


def _as_run_error(exc: Exception) -> RunError:
    """A refusal of the data policy, told to the participant as a RunError."""
    if isinstance(exc, RunError):
        return exc
    field = getattr(exc, "field", "")
    return RunError(
        f"This study is set up not to keep some of the data it tried to save ({field or exc}). "
        "Please contact the research team.",
        code="policy_violation", status=400, title="This answer cannot be saved",
    )  # fmt: skip


@never_cache
@require_GET
def verify_email(request, experiment_id: int, token: str):
    """The link sent by ``form_login_w_email``: confirm and continue."""
    try:
        session = services.verify_email(token=token)
    except (signing.BadSignature, Session.DoesNotExist):  # forged, expired, or its session deleted
        return error_page(
            request,
            RunError(
                "This confirmation link is not valid or has expired. Please ask for a new one on the study page.",
                code="bad_email_link",
                status=400,
                title="Link not valid",
            ),
        )
    except RunError as exc:
        return error_page(request, exc)
    mine = selectors.session_for_request(request, experiment_id)
    if mine is not None and mine.pk == session.pk:
        return redirect("runner:run", experiment_id=experiment_id)
    return render(request, "runner/email_confirmed.html", {"experiment": session.experiment})
