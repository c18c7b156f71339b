"""Forms of the export page."""

from __future__ import annotations

from django import forms

from . import columns as registry
from .models import ExportFormat


def column_choices() -> list[tuple[str, str]]:
    out = []
    for col in registry.COLUMNS:
        label = f"{col.name} — {col.description}"
        if col.identifying:
            label = f"{col.name} (identifying) — {col.description}"
        out.append((col.name, label))
    return out


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices, initial=ExportFormat.CSV_LONG)
    columns = forms.MultipleChoiceField(
        choices=column_choices, initial=registry.default_columns, widget=forms.CheckboxSelectMultiple, required=True
    )
    finished_only = forms.BooleanField(required=False, label="Finished sessions only")
    include_preview = forms.BooleanField(required=False, label="Include preview sessions")
    include_bots = forms.BooleanField(required=False, label="Include bot sessions (rehearsals)")
    include_excluded = forms.BooleanField(required=False, label="Include excluded sessions and participants")
    preset_name = forms.CharField(required=False, max_length=100, label="Preset name")

    def filters(self) -> dict[str, bool]:
        data = self.cleaned_data
        return {k: bool(data.get(k)) for k in ("finished_only", "include_preview", "include_bots", "include_excluded")}

    @staticmethod
    def identifying_names() -> set[str]:
        return set(registry.identifying_names())


class ExclusionForm(forms.Form):
    reason = forms.CharField(max_length=500, strip=True)
