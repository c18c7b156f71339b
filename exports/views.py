"""The editor's export pages: export form with presets and a polled background job, the
preview clean-up, and session / participant exclusion.

Who may do what (staff status first, then the editor's model permissions, so an account
allowed to edit stimuli only cannot read the data; docs/security.md):

- see the pages, run exports, poll and download jobs: ``runner.view_session`` and
  ``runner.view_response`` (:data:`DATA_PERMS`);
- export or download identifying columns: also ``runner.view_subject`` (the permission
  that shows personal fields in the editor);
- delete preview sessions: ``runner.delete_session``; exclude / include: ``runner.change_session``.

Jobs are lab-wide like experiments: any user with these permissions sees every job.
"""

from __future__ import annotations

from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from runner.models import Experiment, Session

from . import columns as registry
from . import services
from .forms import ExclusionForm, ExportForm
from .models import ExportJob, ExportPreset
from .pseudonyms import PseudonymMap, scope_for

DATA_PERMS = ("runner.view_session", "runner.view_response")
IDENTIFYING_PERM = "runner.view_subject"


def _require(*perms: str):
    """Staff login (redirect to the editor login), then ``perms`` (403 without them)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.has_perms(perms):
                raise PermissionDenied("Your editor account may not do this.")
            return view(request, *args, **kwargs)

        return staff_member_required(wrapper)

    return decorator


def _check_identifying(user, columns) -> None:
    identifying = set(registry.identifying_names()) & set(columns or ())
    if identifying and not user.has_perm(IDENTIFYING_PERM):
        names = ", ".join(sorted(identifying))
        raise PermissionDenied(f"Your editor account may not export identifying columns ({names}).")


@_require(*DATA_PERMS)
@require_GET
def index(request):
    experiments = Experiment.objects.annotate(
        n_sessions=Count("sessions", filter=Q(sessions__is_preview=False)),
        n_previews=Count("sessions", filter=Q(sessions__is_preview=True)),
    ).order_by("slug")
    return render(request, "exports/index.html", {"experiments": experiments})


def _initial_from_preset(preset: ExportPreset) -> dict:
    return {"format": preset.format, "columns": preset.columns, "preset_name": preset.name, **preset.filters}


def _initial_choices(request, presets, job: ExportJob | None) -> dict:
    """The form as the experimenter left it: a chosen preset's choices, else those of the
    export just started (the page it redirects to), else the defaults."""
    preset_id = request.GET.get("preset")
    if preset_id and preset_id.isdigit():
        preset = next((p for p in presets if p.pk == int(preset_id)), None)
        if preset is not None:
            return _initial_from_preset(preset)
    if job is not None:
        return {"format": job.format, "columns": job.columns or registry.default_columns(), **job.filters}
    return {}


def _submit_export_form(request, experiment, form) -> str:
    """Save the preset, or start the export job, the valid form asks for; the URL of the
    experiment's page showing it. Raises ``services.ExportError``."""
    data, slug = form.cleaned_data, experiment.slug
    if "save_preset" in request.POST:
        preset = services.save_preset(
            experiment=experiment,
            name=data["preset_name"],
            fmt=data["format"],
            columns=data["columns"],
            filters=form.filters(),
            user=request.user,
        )
        messages.success(request, f"Preset “{preset.name}” saved.")
        return f"{reverse('exports:experiment', args=[slug])}?preset={preset.pk}"
    _check_identifying(request.user, data["columns"])
    job = services.start_export_job(
        experiment=experiment,
        fmt=data["format"],
        columns=data["columns"],
        filters=form.filters(),
        user=request.user,
        background=getattr(settings, "EXPORTS_IN_BACKGROUND", True),
    )
    return f"{reverse('exports:experiment', args=[slug])}?job={job.pk}"


@_require(*DATA_PERMS)
@require_http_methods(["GET", "POST"])
def experiment_page(request, slug: str):
    experiment = get_object_or_404(Experiment, slug=slug)
    presets = list(experiment.export_presets.all())
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            try:
                return redirect(_submit_export_form(request, experiment, form))
            except services.ExportError as exc:
                form.add_error(None, str(exc))
    job = None
    job_id = request.GET.get("job")
    if job_id and job_id.isdigit():
        job = ExportJob.objects.filter(pk=int(job_id), experiment=experiment).first()
    if request.method != "POST":
        form = ExportForm(initial=_initial_choices(request, presets, job))
    context = {
        "experiment": experiment,
        "form": form,
        "presets": presets,
        "job": job,
        "column_rows": [(c, c.name in set(form["columns"].value() or [])) for c in registry.COLUMNS],
        "n_previews": experiment.sessions.filter(is_preview=True).count(),
        "recent_jobs": experiment.export_jobs.all()[:5],
    }
    return render(request, "exports/experiment.html", context)


def _job_json(job: ExportJob) -> dict:
    return {
        "id": job.pk,
        "status": job.status,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "summary": job.summary,
        "download": reverse("exports:job_download", args=[job.pk]) if job.status == ExportJob.Status.DONE else None,
    }


@_require(*DATA_PERMS)
@require_GET
def job_status(request, job_id: int):
    services.expire_stale_jobs()
    job = get_object_or_404(ExportJob, pk=job_id)
    return JsonResponse(_job_json(job))


@_require(*DATA_PERMS)
@require_GET
def job_download(request, job_id: int):
    job = get_object_or_404(ExportJob, pk=job_id, status=ExportJob.Status.DONE)
    _check_identifying(request.user, job.columns)
    path = Path(settings.MEDIA_ROOT) / job.file.name
    if not job.file.name or not path.is_file():
        raise Http404("The export file is gone.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name, content_type="application/zip")


@_require(*DATA_PERMS, "runner.delete_session")
@require_http_methods(["GET", "POST"])
def delete_previews(request, slug: str):
    experiment = get_object_or_404(Experiment, slug=slug)
    if request.method == "POST":
        counts = services.delete_preview_sessions(experiment=experiment)
        messages.success(
            request,
            f"Deleted {counts['sessions']} preview sessions, {counts['responses']} responses "
            f"and {counts['subjects']} participants who had no other sessions.",
        )
        return redirect("exports:experiment", slug=slug)
    previews = experiment.sessions.filter(is_preview=True)
    return render(
        request,
        "exports/confirm_delete_previews.html",
        {
            "experiment": experiment,
            "n_previews": previews.count(),
            "n_responses": sum(s.n for s in previews.annotate(n=Count("responses"))),
        },
    )


@_require(*DATA_PERMS)
@require_GET
def sessions_page(request, slug: str):
    experiment = get_object_or_404(Experiment, slug=slug)
    pseudonyms = PseudonymMap(scope_for(experiment))
    sessions = experiment.sessions.select_related("subject").annotate(n=Count("responses")).order_by("-start")[:500]
    rows = [(s, pseudonyms.get(s.subject_id, s.pk)) for s in sessions]
    return render(request, "exports/sessions.html", {"experiment": experiment, "rows": rows, "form": ExclusionForm()})


@_require(*DATA_PERMS, "runner.change_session")
@require_POST
def set_exclusion(request, slug: str, session_id: int):
    """POST ``action`` = exclude_session | include_session | exclude_subject | include_subject (+ ``reason``)."""
    experiment = get_object_or_404(Experiment, slug=slug)
    session = get_object_or_404(Session, pk=session_id, experiment=experiment)
    action = request.POST.get("action", "")
    try:
        if action == "exclude_session":
            services.exclude_session(session=session, reason=request.POST.get("reason", ""))
        elif action == "include_session":
            services.include_session(session=session)
        elif action in ("exclude_subject", "include_subject") and session.subject is not None:
            if action == "exclude_subject":
                services.exclude_subject(subject=session.subject, reason=request.POST.get("reason", ""))
            else:
                services.include_subject(subject=session.subject)
        else:
            messages.error(request, "Unknown action.")
            return redirect("exports:sessions", slug=slug)
    except services.ExportError as exc:
        messages.error(request, str(exc))
        return redirect("exports:sessions", slug=slug)
    messages.success(request, f"Session {session.pk}: {action.replace('_', ' ')} done.")
    return redirect("exports:sessions", slug=slug)
