"""Experimenter pages (create, start, console) and the two attach pages (SPEC 2)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import user_passes_test
from django.http import Http404, HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import codes, selectors, services
from . import context as group_context
from .forms import CodeForm, GroupForm, StartSessionForm
from .models import StepLog
from .state import GroupError

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
        if form.cleaned_data["group"] is None:  # "New group…": create it, then come back
            query = urlencode({"experiment": form.cleaned_data["experiment"].pk})
            return redirect(f"{reverse('groups:create')}?{query}")
        try:
            gs = services.start_group_session(
                experiment=form.cleaned_data["experiment"],
                group=form.cleaned_data["group"],
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
        "join_url": request.build_absolute_uri(
            f"{reverse('groups:attach_participant')}?{urlencode({'experiment': gs.experiment_id})}"
        ),
        # Without JavaScript; the console script renders the snapshot's live ``step_log``.
        "log": _step_log_rows(gs),
    }
    return render(request, "groups/console.html", context)


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


def _rate_limited(request, kind: str):
    return render(
        request, "groups/rate_limited.html", {"limit": settings.CODE_ATTEMPTS_PER_MINUTE, "kind": kind}, status=429
    )


def attach_participant(request):
    """The participant-code page. ``?experiment=<id>`` limits codes to that experiment."""
    raw_exp = request.GET.get("experiment") or request.POST.get("experiment") or ""
    experiment_id = int(raw_exp) if raw_exp.isdigit() else None
    address = codes.client_address(request)
    if codes.is_rate_limited(kind=codes.PARTICIPANT, address=address):
        return _rate_limited(request, codes.PARTICIPANT)
    form = CodeForm(request.POST or None, initial={"code": request.GET.get("code", "")})
    status = 200
    if request.method == "POST":
        gs = None
        if form.is_valid():
            gs = selectors.find_by_participant_code(form.cleaned_data["code"], experiment_id=experiment_id)
        if gs is not None and gs.ticket is not None:
            return redirect(f"/run/{gs.experiment_id}/start/?{urlencode({'tc': gs.ticket.code})}")
        codes.record_failure(kind=codes.PARTICIPANT, address=address)
        if form.is_valid():
            form.add_error("code", "No open group session has this code. Check it with the experimenter.")
        status = 400
    return render(request, "groups/attach_participant.html", {"form": form, "experiment_id": experiment_id},
                  status=status)  # fmt: skip


@experimenter_required
def attach_experimenter(request):
    address = codes.client_address(request)
    if codes.is_rate_limited(kind=codes.EXPERIMENTER, address=address):
        return _rate_limited(request, codes.EXPERIMENTER)
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST":
        gs = selectors.find_by_experimenter_code(form.cleaned_data["code"]) if form.is_valid() else None
        if gs is not None:
            services.attach_experimenter(group_session=gs, user=request.user)
            return redirect("groups:session_status", group_session_id=gs.pk)
        codes.record_failure(kind=codes.EXPERIMENTER, address=address)
        if form.is_valid():
            form.add_error("code", "No unexpired group session has this experimenter code.")
        status = 400
    return render(request, "groups/attach_experimenter.html", {"form": form}, status=status)
