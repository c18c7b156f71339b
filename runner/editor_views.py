"""Experimenter pages of the runner: the stimulus importer (staff only)."""

from __future__ import annotations

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from runner.models import Experiment
from runner.stimulus_import import StimulusImportError, import_stimuli, limits

MAX_UPLOAD_BYTES = 500 * 1024 * 1024
#: Model permission the importer needs (the editor's "add stimulus"), besides staff status.
IMPORT_PERMISSION = "runner.add_stimulus"


class StimulusImportForm(forms.Form):
    zip_file = forms.FileField(
        label="Zip of media files",
        required=False,
        help_text="Holds the media files and (unless you upload it separately) the CSV table.",
        widget=forms.ClearableFileInput(attrs={"class": "form-control", "accept": ".zip"}),
    )
    table = forms.FileField(
        label="CSV table",
        required=False,
        help_text="Columns: name, location (file name), optional description, file_format, duration, "
        "attribute__<name>__text / attribute__<name>__double. Alone: files already in storage.",
        widget=forms.ClearableFileInput(attrs={"class": "form-control", "accept": ".csv,text/csv"}),
    )
    experiment = forms.ModelChoiceField(
        queryset=Experiment.objects.all(),
        required=False,
        label="Link to experiment (optional)",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def clean(self):
        data = super().clean()
        if not data.get("zip_file") and not data.get("table"):
            raise forms.ValidationError("Upload a zip, a CSV table, or both.")
        for key, limit in (("zip_file", MAX_UPLOAD_BYTES), ("table", limits()["table"])):
            upload = data.get(key)
            if upload and upload.size > limit:
                self.add_error(key, f"This file is too large (limit {limit / 1e6:.0f} MB).")
        return data


@staff_member_required
def stimulus_import(request):
    """``/run/editor/stimuli/import/``: upload, import all-or-nothing, list row errors.
    Staff with the ``runner.add_stimulus`` permission only (403 otherwise)."""
    if not request.user.has_perm(IMPORT_PERMISSION):
        raise PermissionDenied("You may not add stimuli.")
    result = errors = None
    form = StimulusImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        zip_upload, table_upload = form.cleaned_data["zip_file"], form.cleaned_data["table"]
        try:
            result = import_stimuli(
                zip_bytes=zip_upload.open("rb") if zip_upload else None,  # read member by member
                table=table_upload.read() if table_upload else None,
                experiment=form.cleaned_data["experiment"],
            )
        except StimulusImportError as exc:
            errors = exc.errors
    status = 400 if errors else 200
    return render(
        request, "runner/editor/stimulus_import.html", {"form": form, "result": result, "errors": errors}, status=status
    )
