"""Forms of the editor: callback and loop checks, ticket and definition forms."""

from __future__ import annotations

import importlib
import importlib.util

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from runner.callbacks import CallbackError, resolve_callable, resolve_module
from runner.definitions import loop_errors
from runner.definitions.schema import widget_format_problem
from runner.models import DataFormat, Experiment, ExperimentXForm, Handler, Question
from runner.tickets import CREATABLE_TYPES, MAX_TICKETS_PER_CALL


def _policy_errors(policy) -> list[str]:
    if not policy or importlib.util.find_spec("runner.policy") is None:
        return []
    return importlib.import_module("runner.policy").policy_errors(policy)


def https_urls(db_field, **kwargs):
    """Form field of a model field; URL fields assume https:// when typed without a scheme."""
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class ExperimentAdminForm(forms.ModelForm):
    """Checks what load_experiment checks: group_flow imports, the data policy is valid."""

    class Meta:
        model = Experiment
        fields = "__all__"
        formfield_callback = https_urls

    def clean_group_flow(self):
        dotted = (self.cleaned_data.get("group_flow") or "").strip()
        if dotted:
            try:
                resolve_module(dotted)
            except CallbackError as exc:
                raise ValidationError(str(exc)) from None
        return dotted

    def clean_data_policy(self):
        policy = self.cleaned_data.get("data_policy") or {}
        errors = _policy_errors(policy)
        if errors:
            raise ValidationError(errors)
        return policy

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("is_group"):
            for key in ("group_flow", "group_size"):
                if cleaned.get(key):
                    self.add_error(key, "Only group experiments have this (tick 'is group').")
        if self.instance.pk and "is_group" in self.changed_data and self.instance.sessions.exists():
            self.add_error("is_group", "This experiment already has sessions; copy it to change this.")
        return cleaned


class ExperimentXFormInlineForm(forms.ModelForm):
    """One form of the sequence; its callbacks must resolve now, not in front of a participant."""

    class Meta:
        model = ExperimentXForm
        fields = "__all__"

    def _callback(self, name: str) -> str:
        dotted = (self.cleaned_data.get(name) or "").strip()
        if dotted:
            try:
                resolve_callable(dotted)
            except CallbackError as exc:
                raise ValidationError(str(exc)) from None
        return dotted

    def clean_condition_script(self):
        return self._callback("condition_script")

    def clean_stimulus_script(self):
        return self._callback("stimulus_script")


class ExperimentXFormFormSet(forms.BaseInlineFormSet):
    """Checks across the sequence: loops go back to an existing form and never overlap."""

    def clean(self):
        super().clean()
        rows = [
            f.cleaned_data
            for f in self.forms
            if getattr(f, "cleaned_data", None) and not f.cleaned_data.get("DELETE") and f.cleaned_data.get("form")
        ]
        orders = {row["order"] for row in rows if row.get("order")}
        errors = []
        loops = []
        for row in rows:
            if row.get("handler") == Handler.GROUP_TRIAL and not self.instance.is_group:
                errors.append(f"Form {row['order']}: group_trial is only for group experiments.")
            if row.get("goto") is not None and row.get("repeat") is not None:
                if row["goto"] not in orders:
                    errors.append(f"Form {row['order']}: goto {row['goto']} is not the order of a form here.")
                else:
                    loops.append((row["goto"], row["order"]))
        ends = [row["order"] for row in rows if row.get("handler") == Handler.FORM_END_SESSION]
        if ends and orders and max(ends) != max(orders):
            errors.append("form_end_session ends the session, so it must be the last form.")
        errors += [message for _, message in loop_errors(loops)]
        if errors:
            raise ValidationError(errors)


class DataFormatAdminForm(forms.ModelForm):
    """Data formats are value objects: refuse a duplicate instead of failing on the unique signature."""

    class Meta:
        model = DataFormat
        fields = ["df_type", "choices", "range"]

    def clean(self):
        cleaned = super().clean()
        signature = DataFormat.make_signature(cleaned.get("df_type"), cleaned.get("choices"), cleaned.get("range"))
        twin = DataFormat.objects.filter(signature=signature).exclude(pk=self.instance.pk).first()
        if twin is not None:
            raise ValidationError(f"An identical data format already exists (#{twin.pk}: {twin}); use that one.")
        return cleaned


class QuestionAdminForm(forms.ModelForm):
    """A question's widget must suit its data format by the loader's rule
    (``widget_format_problem``), so every experiment the editor saves dumps to a
    definition file that loads again."""

    class Meta:
        model = Question
        fields = ["key", "text", "widget", "data_format"]

    def clean(self):
        cleaned = super().clean()
        widget, fmt = cleaned.get("widget"), cleaned.get("data_format")
        if widget and fmt is not None:
            problem = widget_format_problem(widget, fmt.df_type, fmt.choices, fmt.range)
            if problem:
                raise ValidationError({"data_format": f"{problem} (data format #{fmt.pk}: {fmt})."})
        return cleaned


class CreateTicketsForm(forms.Form):
    type = forms.ChoiceField(choices=[(t, t.title()) for t in CREATABLE_TYPES], initial="master")
    count = forms.IntegerField(min_value=1, max_value=MAX_TICKETS_PER_CALL, initial=1)
    valid_from = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), help_text="Optional (UTC)."
    )
    expires = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), help_text="Optional (UTC)."
    )
    label = forms.CharField(required=False, max_length=200, help_text="Your note, e.g. 'lab PCs'.")

    def clean(self):
        cleaned = super().clean()
        expires, valid_from = cleaned.get("expires"), cleaned.get("valid_from")
        if expires and expires <= timezone.now():
            self.add_error("expires", "This is already in the past.")
        if expires and valid_from and expires <= valid_from:
            self.add_error("expires", "Must be after 'valid from'.")
        return cleaned


class LoadDefinitionForm(forms.Form):
    file = forms.FileField(help_text="An experiment definition (YAML), as written by 'Download definition'.")
    create_only = forms.BooleanField(required=False, help_text="Refuse to update an existing experiment.")
    force = forms.BooleanField(
        required=False, help_text="Change the form sequence even though some sessions are unfinished."
    )
