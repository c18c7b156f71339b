"""Experimenter pages (create, start, console) and the two attach pages (SPEC 2)."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import user_passes_test
from django.http import Http404, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import codes, flowservices, projector, selectors, services
from . import context as group_context
from .forms import CodeForm, GroupForm, StartSessionForm
from .models import StepLog
from .state import GroupError

logger = logging.getLogger(__name__)

experimenter_required = user_passes_test(lambda u: u.is_active and u.is_staff, login_url=settings.LOGIN_URL)


@experimenter_required
def group_create(request):
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group = form.save(commit=False)
        group.created_by = request.user
        group.save()
        messages.success(request, f"Group “{group.name}” created.")
        query = {"group": group.pk}
        experiment = request.GET.get("experiment", "")
        if experiment.isdigit():
            query["experiment"] = experiment
        return redirect(f"{reverse('groups:session_start')}?{urlencode(query)}")
    return render(request, "groups/create.html", {"form": form})


@experimenter_required
def session_start(request):
    initial = {k: request.GET[k] for k in ("group", "experiment") if request.GET.get(k, "").isdigit()}
    form = StartSessionForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            gs = services.start_group_session(
                experiment=form.cleaned_data["experiment"],
                group=form.chosen_group(),
                size=form.cleaned_data["size"],
                experimenter=request.user,
            )
        except GroupError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("groups:session_status", group_session_id=gs.pk)
    return render(request, "groups/start.html", {"form": form})


def _controlled(request, group_session_id: int):
    try:
        gs = selectors.get_group_session(group_session_id)
    except GroupError:
        raise Http404("No such group session") from None
    return gs, selectors.can_control(request.user, gs)


def _step_log_rows(gs):
    rows = StepLog.objects.filter(group_session=gs).select_related("by").order_by("-at_ms", "-id")
    return rows[: settings.GROUP_CONSOLE_LOG_ENTRIES]


@experimenter_required
def session_status(request, group_session_id: int):
    gs, allowed = _controlled(request, group_session_id)
    if not allowed:
        messages.info(request, "Enter the experimenter code of this group session to control it.")
        return redirect("groups:attach_experimenter")
    context = {
        "gs": gs,
        "snapshot": selectors.snapshot(gs.pk),
        "ws_path": f"/ws/group/{gs.pk}/experimenter/",
        "join_url": projector.join_url(
            request.build_absolute_uri(reverse("groups:attach_participant")), experiment_id=gs.experiment_id
        ),
        # Without JavaScript; the console script renders the snapshot's live ``step_log``.
        "log": _step_log_rows(gs),
    }
    return render(request, "groups/console.html", context)


@experimenter_required
def session_projector(request, group_session_id: int):
    """The wall view: the participant code large enough to read across a room, the join
    link and its QR code (code filled in), and how many have joined, live. The
    experimenter code is not on it."""
    gs, allowed = _controlled(request, group_session_id)
    if not allowed:
        messages.info(request, "Enter the experimenter code of this group session to show it.")
        return redirect("groups:attach_experimenter")
    base = request.build_absolute_uri(reverse("groups:attach_participant"))
    join = projector.join_url(base, experiment_id=gs.experiment_id)
    with_code = projector.join_url(base, experiment_id=gs.experiment_id, code=gs.participant_code)
    snapshot = selectors.snapshot(gs.pk)
    context = {
        "gs": gs,
        "joined": sum(1 for p in snapshot.get("participants", []) if p.get("status") != "kicked"),
        "ws_path": f"/ws/group/{gs.pk}/experimenter/",
        "join_url": join,
        "qr_url": with_code,
        "qr_svg": projector.qr_svg(with_code),
    }
    return render(request, "groups/projector.html", context)


@experimenter_required
def session_answers(request, group_session_id: int):
    """The console's "answers" of one participant at the current step, as JSON."""
    gs, allowed = _controlled(request, group_session_id)
    if not allowed:
        return HttpResponseForbidden("Not attached to this group session.")
    answers = selectors.step_answers(gs, request.GET.get("participant", "")[:32])
    if answers is None:
        return JsonResponse({"ok": False, "code": "not_found", "message": "No such participant here."}, status=404)
    return JsonResponse({"ok": True, "step": gs.step, "answers": answers})


@experimenter_required
def session_store(request, group_session_id: int):
    """Whether the context store answers, for the console's notice between snapshots
    (while Redis is down no snapshot reaches the console; it asks every few seconds)."""
    _gs, allowed = _controlled(request, group_session_id)
    if not allowed:
        return HttpResponseForbidden("Not attached to this group session.")
    down = not group_context.store_answers()
    return JsonResponse({"context_store": group_context.get_store().name, "down": down})


@experimenter_required
@require_POST
def session_notes(request, group_session_id: int):
    gs, allowed = _controlled(request, group_session_id)
    if not allowed:
        return HttpResponseForbidden("Not attached to this group session.")
    notes = request.POST.get("notes", "")
    if len(notes) > 100_000:
        return JsonResponse({"ok": False, "code": "too_long"}, status=400)
    services.save_notes(group_session=gs, notes=notes)
    return JsonResponse({"ok": True})


@experimenter_required
def session_failures(request, group_session_id: int):
    """The console's notices: timelines that failed on this group session's participants'
    pages (runner/failures.py), newest first, with the participant's console pseudonym."""
    from runner import failures

    gs, allowed = _controlled(request, group_session_id)
    if not allowed:
        return HttpResponseForbidden("Not attached to this group session.")
    rows = failures.recent(group_session_id=gs.pk)
    names = dict(
        gs.memberships.filter(session_id__in={f.session_id for f in rows}).values_list("session_id", "pseudonym")
    )
    return JsonResponse({"failures": [
        {"id": f.pk, "participant": names.get(f.session_id, "?"), "form": f.form.name, "visit": f.visit,
         "kind": f.kind, "message": f.message, "at": f.created.isoformat(), "skipped": f.skipped_at is not None,
         "skip_url": reverse("runner:skip_failure", args=[f.pk])}
        for f in rows
    ]})  # fmt: skip


def _rate_limited(request, kind: str):
    context = {"limit": settings.CODE_ATTEMPTS_PER_MINUTE, "kind": kind}
    return render(request, "groups/rate_limited.html", context, status=429)


def _attach(request, kind: str, find, on_found, template: str, context: dict):
    """The attach page, or 503 (nothing evaluated) while the attempt counters are down."""
    try:
        return _attach_counted(request, kind, find, on_found, template, context)
    except codes.CountersUnavailable:
        logger.warning("group codes: attempt counters unavailable; %s code refused unchecked", kind)
        return render(request, "groups/codes_unavailable.html", status=503)


def _attach_counted(request, kind: str, find, on_found, template: str, context: dict):
    """The attach flow both pages share: a browser over its limit, or an address at its
    limit of wrong codes, gets 429 (also for a right code, until its minute is over); a post
    is counted before its code is looked at (``codes.begin_attempt``), a right one given
    back, a wrong one counted against its address (``codes.attempt_failed``)."""
    client = codes.identify(request)
    form = CodeForm(request.POST or None, initial={"code": request.GET.get("code", "")})
    if request.method != "POST":
        if codes.is_rate_limited(kind=kind, client=client):
            return codes.remember_browser(client, _rate_limited(request, kind))
        return codes.remember_browser(client, render(request, template, {"form": form, **context}))
    if not codes.begin_attempt(kind=kind, client=client):
        return codes.remember_browser(client, _rate_limited(request, kind))
    try:
        found = find(form.cleaned_data["code"]) if form.is_valid() else None
        response = on_found(found) if found is not None else None
    except BaseException:
        codes.attempt_abandoned(kind=kind, client=client)  # a server error is not a wrong code
        raise
    if response is not None:
        codes.attempt_succeeded(kind=kind, client=client)
        return codes.remember_browser(client, response)
    codes.attempt_failed(kind=kind, client=client)
    if form.is_valid():
        form.add_error("code", context.pop("wrong_code"))
    return codes.remember_browser(client, render(request, template, {"form": form, **context}, status=400))


def attach_participant(request):
    """The participant-code page. ``?experiment=<id>`` limits codes to that experiment;
    for an experiment with a lobby it is the lobby's door (no code: ``lobby_door``)."""
    raw_exp = request.GET.get("experiment") or request.POST.get("experiment") or ""
    experiment_id = int(raw_exp) if raw_exp.isdigit() else None
    door = lobby_door(request, experiment_id)
    if door is not None:
        return door

    def enter(gs):
        if gs.ticket is None:
            return None
        return redirect(f"/run/{gs.experiment_id}/start/?{urlencode({'tc': gs.ticket.code})}")

    return _attach(
        request, codes.PARTICIPANT,
        lambda code: selectors.find_by_participant_code(code, experiment_id=experiment_id), enter,
        "groups/attach_participant.html",
        {"experiment_id": experiment_id,
         "wrong_code": "No open group session has this code. Check it with the experimenter."},
    )  # fmt: skip


@experimenter_required
def attach_experimenter(request):
    def enter(gs):
        services.attach_experimenter(group_session=gs, user=request.user)
        return redirect("groups:session_status", group_session_id=gs.pk)

    return _attach(
        request, codes.EXPERIMENTER, selectors.find_by_experimenter_code, enter, "groups/attach_experimenter.html",
        {"wrong_code": "No unexpired group session has this experimenter code."},
    )  # fmt: skip


def lobby_door(request, experiment_id: int | None):
    """An experiment with a lobby (issue 20) is joined without a code: *Join* places the
    arrival into its open group session (the newest unexpired one that has not ended), as
    the code would; the session's lobby places or keeps them standby. None: no lobby."""
    from runner.models import Experiment

    experiment = Experiment.objects.filter(pk=experiment_id, is_group=True).exclude(lobby={}).first()
    if experiment is None:
        return None
    context = {"experiment_id": experiment_id, "lobby": experiment.lobby, "title": experiment.title}
    gs = flowservices.open_lobby_session(experiment)
    if request.method != "POST":
        context["waiting"] = flowservices.lobby_now(gs) if gs is not None else None  # reads only
        return render(request, "groups/lobby_door.html", context)
    if gs is None or gs.ticket is None:
        context["closed"] = True
        return render(request, "groups/lobby_door.html", context, status=409)
    return redirect(f"/run/{gs.experiment_id}/start/?{urlencode({'tc': gs.ticket.code})}")
