"""Forms of the experimenter and attach pages."""

from __future__ import annotations

from django import forms
from django.conf import settings

from .codes import looks_like_code, normalize_code
from .models import Group


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class StartSessionForm(forms.Form):
    experiment = forms.ModelChoiceField(queryset=None, empty_label="Choose a group experiment")
    group = forms.ModelChoiceField(
        queryset=Group.objects.all(), required=False, empty_label="No group, or a new one below",
    )  # fmt: skip
    new_group = forms.CharField(
        max_length=100, required=False, label="New group",
        help_text="A name for a new group (e.g. “Lab 2, Tuesday”), created with the session. Optional.",
    )  # fmt: skip
    size = forms.IntegerField(min_value=1, max_value=500, required=False, help_text="Expected participants (optional).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from runner.models import Experiment

        self.fields["experiment"].queryset = Experiment.objects.filter(is_group=True, is_active=True)

    def clean(self):
        data = super().clean()
        if data.get("group") is not None and data.get("new_group"):
            raise forms.ValidationError("Choose a group or name a new one, not both.")
        return data

    def chosen_group(self) -> Group | str | None:
        """The group chosen, the name of a new one (created with the session), or None."""
        return self.cleaned_data["group"] or self.cleaned_data["new_group"] or None


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false",
                "class": "form-control form-control-lg text-center code-display", "inputmode": "text",
            }
        ),
    )  # fmt: skip

    def clean_code(self) -> str:
        code = normalize_code(self.cleaned_data["code"])
        if not looks_like_code(code):
            raise forms.ValidationError(f"A code has {settings.GROUP_CODE_LENGTH} letters or digits.")
        return code
