"""jsPsych support views (issue 17): an experiment package's ``jspsych.js``, reports of
timelines that failed in the browser, and the experimenter's "skip this form for that run"."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import user_passes_test
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from runner import failures, jspsych_package, selectors
from runner.errors import RunError
from runner.models import TimelineFailure

staff_required = user_passes_test(lambda u: u.is_active and u.is_staff, login_url=settings.LOGIN_URL)


@require_GET
def package_script(request, experiment_id: int, package: str):
    """``/run/<id>/package/<package>/jspsych.js``: the package's ``jspsych.js``, served only
    for a package a form of the experiment takes its stimulus script from. With ``?v=`` equal
    to the content hash it may be cached for a year (a changed file gets a new URL)."""
    experiment = selectors.experiment_or_none(experiment_id)
    path = jspsych_package.script_path(package)
    if experiment is None or path is None or not jspsych_package.experiment_uses(experiment, package):
        raise Http404("No jspsych.js for this package.")
    digest, _ = jspsych_package.script_info(path)
    response = HttpResponse(path.read_bytes(), content_type="text/javascript; charset=utf-8")
    response["ETag"] = f'"{digest}"'
    fresh = request.GET.get("v") == digest
    response["Cache-Control"] = "public, max-age=31536000, immutable" if fresh else "no-cache"
    return response


def _parse_report(request) -> failures.Report:
    if len(request.body) > settings.JSPSYCH_FAILURE_MAX_BYTES:
        raise failures.FailureRefused("The report is too large.", code="too_large", status=413)
    try:
        data = json.loads(request.body.decode("utf-8"))
        return failures.Report(order=int(data["order"]), visit=int(data["visit"]), nonce=str(data["nonce"]),
                               kind=str(data["kind"]), message=str(data.get("message", "")))  # fmt: skip
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise failures.FailureRefused("Unreadable report.", code="bad_report") from None


@require_POST
def report_failure(request, experiment_id: int):
    """``POST /run/<id>/timeline-failure/`` (JSON ``{order, visit, nonce, kind, message}``,
    CSRF token in ``X-CSRFToken``): the page's timeline could not run. Stores and logs one
    :class:`TimelineFailure` (runner/failures.py); answers ``{"ok": true, "id": N}`` or an
    error code (400 bad_report, 403 no_run, 409 not_current, 413 too_large, 429 rate_limited)."""
    session = selectors.session_for_request(request, experiment_id)
    if session is None:
        return JsonResponse({"ok": False, "code": "no_run"}, status=403)
    try:
        failure = failures.record(session=session, report=_parse_report(request))
    except failures.FailureRefused as exc:
        return JsonResponse({"ok": False, "code": exc.code, "message": exc.message}, status=exc.status)
    return JsonResponse({"ok": True, "id": failure.pk})


def may_skip(user, failure: TimelineFailure) -> bool:
    """An experimenter who may change the experiment, or who controls the failure's group session."""
    if user.has_perm("runner.change_experiment"):
        return True
    if failure.group_session_id is None:
        return False
    from groups.selectors import can_control

    return can_control(user, failure.group_session)


@staff_required
@require_POST
def skip_failure(request, failure_id: int):
    """``POST /run/editor/failures/<id>/skip/``: the run of that failure skips the form (nothing
    stored for it). JSON for ``Accept: application/json`` (the console), else back to ``next``."""
    failure = get_object_or_404(TimelineFailure.objects.select_related("group_session"), pk=failure_id)
    if not may_skip(request.user, failure):
        return JsonResponse({"ok": False, "code": "forbidden"}, status=403)
    try:
        failures.skip_form(failure_id=failure.pk, by=request.user)
        result = {"ok": True}, 200
    except RunError as exc:
        result = {"ok": False, "code": exc.code, "message": exc.message}, exc.status
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse(result[0], status=result[1])
    if result[1] == 200:
        messages.success(request, "The form was skipped for that run; the participant continues with the next page.")
    else:
        messages.error(request, result[0]["message"])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("admin:runner_experiment_change", args=[failure.experiment_id])
    return redirect(target)
