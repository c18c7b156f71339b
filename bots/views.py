"""The editor's *Rehearse* page of an experiment: start N bots against this server, then
the report (docs/bots.md)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from bots import services
from bots.models import Rehearsal
from bots.rehearsal import RehearsalError
from bots.report import table
from runner.models import Experiment


class RehearseForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=services.MAX_EDITOR_BOTS, initial=10, label="Bots")


@staff_member_required
@require_http_methods(["GET", "POST"])
def rehearse(request, experiment_id: int):
    experiment = get_object_or_404(Experiment, pk=experiment_id)
    services.reap_ghosts(experiment.rehearsals.all())
    form = RehearseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            base = request.build_absolute_uri("/").rstrip("/")
            count = form.cleaned_data["count"]
            rehearsal = services.start_rehearsal(experiment=experiment, count=count, url=base, user=request.user)
        except RehearsalError as exc:
            form.add_error("count", str(exc))
        else:
            messages.info(request, f"Rehearsal with {rehearsal.count} bots started.")
            return redirect("bots:rehearsal", rehearsal_id=rehearsal.pk)
    context = {"experiment": experiment, "form": form, "rehearsals": experiment.rehearsals.all()[:20],
               "title": f"Rehearse {experiment.slug}"}  # fmt: skip
    return render(request, "bots/rehearse.html", context, status=400 if form.errors else 200)


@staff_member_required
def rehearsal_page(request, rehearsal_id: int):
    services.reap_ghosts(Rehearsal.objects.filter(pk=rehearsal_id))
    rehearsal = get_object_or_404(Rehearsal.objects.select_related("experiment"), pk=rehearsal_id)
    context = {"rehearsal": rehearsal, "experiment": rehearsal.experiment, "title": str(rehearsal),
               "text": table(rehearsal.report) if rehearsal.report else ""}  # fmt: skip
    return render(request, "bots/rehearsal.html", context)
