"""Django forms built from a Form's questions (server-side validation) whose widgets
carry the matching HTML attributes (client-side validation).

Widget -> field: radiogroup/menu -> ChoiceField (enum choices), checkbox ->
MultipleChoiceField (at least one when required), text/textarea -> CharField (or a
number field when the data format is numeric), numeric/slider -> IntegerField or
FloatField with the data format's min/max/step.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms

from runner.models import DataFormat, WidgetType

PREFIX = "q"
#: Fields posted under their plain name (the rest are ``q-<question key>``).
CONTROL_FIELDS = {"_jspsych"}
#: Posted once per slider the participant has not moved (the page drops it on the first move):
#: a range input always has a value, so the midpoint would otherwise be stored as an answer.
UNTOUCHED_FIELD = "_untouched"
SLIDER_REQUIRED_MESSAGE = "An answer is required: please move the slider."
TEXT_MAX_LENGTH = 500
TEXTAREA_MAX_LENGTH = 10_000


def _choices(fmt: DataFormat) -> list[tuple[str, str]]:
    return [(str(c), str(c)) for c in (fmt.choices or [])]


def _number_field(fmt: DataFormat, *, required: bool, widget: str, label: str) -> forms.Field:
    rng = fmt.range or {}
    lo, hi, step = rng.get("min"), rng.get("max"), rng.get("step")
    integer = fmt.df_type == DataFormat.Type.INT or (
        fmt.df_type != DataFormat.Type.FLOAT and all(isinstance(v, int) for v in (lo, hi, step) if v is not None)
    )
    attrs = {"class": "form-range" if widget == WidgetType.SLIDER else "form-control"}
    if widget != WidgetType.SLIDER:
        attrs["inputmode"] = "numeric" if integer else "decimal"
    attrs["step"] = str(step) if step is not None else ("1" if integer else "any")
    input_widget = forms.NumberInput(attrs=attrs)
    if widget == WidgetType.SLIDER:
        input_widget.input_type = "range"
    kwargs = {"required": required, "label": label, "widget": input_widget}
    if widget == WidgetType.SLIDER:
        kwargs["error_messages"] = {"required": SLIDER_REQUIRED_MESSAGE}
    if lo is not None:
        kwargs["min_value"] = lo
    if hi is not None:
        kwargs["max_value"] = hi
    if integer:
        if step not in (None, 1):
            kwargs["step_size"] = step
        return forms.IntegerField(**kwargs)
    if step is not None:
        kwargs["step_size"] = Decimal(str(step))
        if lo is not None:
            kwargs["min_value"] = Decimal(str(lo))
        if hi is not None:
            kwargs["max_value"] = Decimal(str(hi))
        return forms.DecimalField(**kwargs)
    return forms.FloatField(**kwargs)


def _choice_field(fmt, *, required: bool, widget: str, label: str) -> forms.Field:
    """Radio buttons, a menu, or check boxes (one yes/no box unless the format is an enum)."""
    if widget == WidgetType.RADIOGROUP:
        return forms.ChoiceField(
            choices=_choices(fmt),
            required=required,
            label=label,
            widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
        )
    if widget == WidgetType.MENU:
        return forms.ChoiceField(
            choices=[("", "Choose…")] + _choices(fmt),
            required=required,
            label=label,
            widget=forms.Select(attrs={"class": "form-select"}),
        )
    if fmt.df_type != DataFormat.Type.ENUM:
        return forms.BooleanField(
            required=required, label=label, widget=forms.CheckboxInput(attrs={"class": "form-check-input"})
        )
    return forms.MultipleChoiceField(
        choices=_choices(fmt),
        required=required,
        label=label,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={"required": "Please tick at least one box."},
    )


def question_field(question, *, required: bool) -> forms.Field:
    """The form field for one question (its widget type and data format)."""
    fmt = question.data_format
    widget = question.widget
    label = question.text
    if widget in (WidgetType.RADIOGROUP, WidgetType.MENU, WidgetType.CHECKBOX):
        return _choice_field(fmt, required=required, widget=widget, label=label)
    if widget in (WidgetType.NUMERIC, WidgetType.SLIDER) or fmt.df_type in (DataFormat.Type.INT, DataFormat.Type.FLOAT):
        return _number_field(fmt, required=required, widget=widget, label=label)
    if widget == WidgetType.TEXTAREA:
        return TextareaField(
            required=required,
            label=label,
            max_length=TEXTAREA_MAX_LENGTH,
            widget=forms.Textarea(attrs={"class": "form-control", "rows": 4}),
        )
    return forms.CharField(
        required=required,
        label=label,
        max_length=TEXT_MAX_LENGTH,
        widget=forms.TextInput(attrs={"class": "form-control", "autocomplete": "off"}),
    )


class TextareaField(forms.CharField):
    """Multi-line text whose length is counted as the browser counts it: a form submission
    sends each line break as CRLF, which ``maxlength`` (and the participant) count as one
    character. Stored with ``\n`` line breaks."""

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


def _without_untouched(data, form_questions):
    """``data`` without the values of sliders the page reports as never moved."""
    if not data or not hasattr(data, "getlist") or UNTOUCHED_FIELD not in data:
        return data
    sliders = {f"{PREFIX}-{fxq.question.key}" for fxq in form_questions if fxq.question.widget == WidgetType.SLIDER}
    untouched = sliders.intersection(data.getlist(UNTOUCHED_FIELD))
    if not untouched:
        return data
    data = data.copy()
    for name in untouched:
        data.pop(name, None)
    return data


class QuestionsForm(forms.Form):
    """The questions of one form, in order. ``cleaned_answers()`` gives JSON-ready values.
    A slider the participant never moved has no value (see ``UNTOUCHED_FIELD``)."""

    def __init__(self, data=None, *args, form_questions=(), **kwargs):
        kwargs.setdefault("prefix", PREFIX)
        super().__init__(_without_untouched(data, form_questions), *args, **kwargs)
        self.form_questions = list(form_questions)
        for fxq in self.form_questions:
            field = question_field(fxq.question, required=fxq.required)
            field.widget_type = fxq.question.widget
            self.fields[fxq.question.key] = field

    def add_prefix(self, field_name):
        # Control fields (``_jspsych``) keep their plain name; questions are ``q-<key>``.
        return field_name if field_name in CONTROL_FIELDS else super().add_prefix(field_name)

    def cleaned_answers(self) -> dict:
        out = {}
        for fxq in self.form_questions:
            value = self.cleaned_data.get(fxq.question.key)
            if isinstance(value, Decimal):
                value = int(value) if value == value.to_integral_value() else float(value)
            if value == "" and not fxq.required:
                value = None
            out[fxq.question.key] = value
        return out


def validate_dob(value) -> None:
    from django.utils import timezone

    if value >= timezone.localdate() or value.year < 1900:
        raise forms.ValidationError("Please enter your real date of birth.")


#: Personal fields of form_subject_register (names are Subject fields, prefixed ``subject_``).
SUBJECT_REGISTER_FIELDS = {
    "name_first": lambda: forms.CharField(
        label="First name",
        max_length=100,
        widget=forms.TextInput(attrs={"class": "form-control", "autocomplete": "given-name"}),
    ),
    "name_last": lambda: forms.CharField(
        label="Last name",
        max_length=100,
        widget=forms.TextInput(attrs={"class": "form-control", "autocomplete": "family-name"}),
    ),
    "email": lambda: email_field(),
    "dob": lambda: forms.DateField(
        label="Date of birth",
        validators=[validate_dob],
        widget=forms.DateInput(attrs={"class": "form-control", "type": "date", "autocomplete": "bday"}),
    ),
    "phone": lambda: forms.CharField(
        label="Phone number (optional)",
        max_length=50,
        required=False,
        widget=forms.TextInput(attrs={"class": "form-control", "type": "tel", "autocomplete": "tel"}),
    ),
}


def email_field() -> forms.EmailField:
    return forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"class": "form-control", "autocomplete": "email"}),
    )


def add_subject_fields(form: forms.Form, names) -> None:
    """Add personal fields (``subject_<name>``) to a questions form, before its questions."""
    extra = {f"subject_{name}": SUBJECT_REGISTER_FIELDS[name]() for name in names}
    form.fields = {**extra, **form.fields}
    form.subject_field_names = list(extra)
