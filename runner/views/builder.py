"""The survey builder (one page per experiment) and the preview run. Editor login and
the change permission on experiments are checked by ``runner.admin`` (these views are
mounted in the experiment admin's URLs, behind ``admin_view``)."""

from __future__ import annotations

import json
from datetime import timedelta

from django import forms
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from runner import builder
from runner.definitions import dump_experiment
from runner.models import Experiment, Ticket, WidgetType
from runner.tickets import create_tickets, run_url

MAX_BODY_BYTES = 1_000_000
PREVIEW_LABEL = "preview (survey builder)"


def builder_page(request, experiment: Experiment):
    context = {
        "experiment": experiment,
        "definition": builder.definition_of(experiment),
        "yaml_text": dump_experiment(experiment),
        "handlers": builder.handler_choices(),
        "widgets": [(str(w), w.label) for w in WidgetType],
        "save_url": reverse("admin:runner_experiment_builder_save", args=[experiment.pk]),
        "preview_url": reverse("admin:runner_experiment_builder_preview", args=[experiment.pk]),
        "run_url": reverse("admin:runner_experiment_preview_run", args=[experiment.pk]),
        "change_url": reverse("admin:runner_experiment_change", args=[experiment.pk]),
    }
    return render(request, "runner/editor/builder.html", context)


def _json_body(request) -> dict:
    if len(request.body) > MAX_BODY_BYTES:
        raise builder.BuilderError("The definition is too large for the builder.")
    try:
        body = json.loads(request.body, object_pairs_hook=_no_repeated_keys)
    except (ValueError, UnicodeDecodeError):
        raise builder.BuilderError("The request is not JSON.") from None
    if not isinstance(body, dict):
        raise builder.BuilderError("The request is a JSON object.")
    return body


def _no_repeated_keys(pairs):
    """A JSON object naming a key twice is ambiguous (which one counts?): refuse it."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise builder.BuilderError(f"The key '{key}' is given twice.")
        out[key] = value
    return out


@require_POST
def builder_save(request, experiment: Experiment):
    """Save the builder's definition through the loader: JSON ``{ok, status, errors, ...}``."""
    try:
        body = _json_body(request)
        force = body.get("force") is True
        if "yaml" in body:
            outcome = builder.save_text(experiment=experiment, text=body["yaml"], force=force)
        else:
            outcome = builder.save(experiment=experiment, definition=body.get("definition"), force=force)
    except builder.BuilderError as exc:
        return JsonResponse({"ok": False, "errors": [str(exc)]}, status=400)
    data = {"ok": outcome.ok, "status": outcome.status, "errors": outcome.errors or [],
            "warnings": outcome.warnings or [], "yaml": outcome.yaml}  # fmt: skip
    if outcome.ok:
        experiment.refresh_from_db()
        data["definition"] = builder.definition_of(experiment)
        data["yaml"] = dump_experiment(experiment)
    return JsonResponse(data, status=200 if outcome.ok else 422)


@require_POST
def builder_preview(request, experiment: Experiment):
    """The participant's page for one form of the (unsaved) definition, as HTML."""
    try:
        body = _json_body(request)
    except builder.BuilderError as exc:
        return HttpResponseBadRequest(str(exc))
    form = body.get("form") if isinstance(body.get("form"), dict) else {}
    context = {"experiment": experiment, "form_def": form, "form": builder.preview_form(form)}
    html = render_to_string("runner/editor/builder_preview.html", context, request=request)
    return JsonResponse({"html": html})


@require_POST
def preview_run(request, experiment: Experiment):
    """Run the experiment as a test participant: a one-run ticket, and its start link.
    The run is a preview session (started by an experimenter), left out of exports."""
    if experiment.is_group:
        return redirect(f"{reverse('groups:session_start')}?experiment={experiment.pk}")
    ticket = create_tickets(
        experiment=experiment, type=Ticket.Type.USER, count=1, expires=timezone.now() + timedelta(days=1),
        created_by=request.user, label=PREVIEW_LABEL,
    )[0]  # fmt: skip
    return redirect(run_url(ticket, request.build_absolute_uri("/")))


def new_survey(request):
    """Name a new experiment; it is created with a page of questions and an end page, and
    the builder opens on it."""
    form = NewSurveyForm(request.POST or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        made = builder.create(**form.cleaned_data)
        if isinstance(made, Experiment):
            return redirect("admin:runner_experiment_builder", made.pk)
        errors = made.errors or []
    return render(request, "runner/editor/builder_new.html", {"form": form, "errors": errors})


class NewSurveyForm(forms.Form):
    title = forms.CharField(max_length=200, widget=forms.TextInput(attrs={"class": "form-control"}))
    slug = forms.SlugField(
        max_length=50, help_text="Short name for links and files: letters, digits and dashes (e.g. mood-2027).",
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )  # fmt: skip
    is_group = forms.BooleanField(
        required=False, label="Live group experiment", widget=forms.CheckboxInput(attrs={"class": "form-check-input"})
    )
