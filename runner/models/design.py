"""What an experiment is: data formats, questions, forms, experiments, studies."""

from __future__ import annotations

import hashlib
import json

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


class WidgetType(models.TextChoices):
    RADIOGROUP = "radiogroup", "Radio buttons"
    CHECKBOX = "checkbox", "Checkboxes"
    MENU = "menu", "Drop-down menu"
    TEXT = "text", "Single-line text"
    TEXTAREA = "textarea", "Multi-line text"
    NUMERIC = "numeric", "Number"
    SLIDER = "slider", "Slider"


CHOICE_WIDGETS = {WidgetType.RADIOGROUP, WidgetType.CHECKBOX, WidgetType.MENU}
RANGE_WIDGETS = {WidgetType.NUMERIC, WidgetType.SLIDER}


class Handler(models.TextChoices):
    """Form handlers (SPEC section 3; PyEnsemble names)."""

    FORM_GENERIC = "form_generic"
    FORM_GENERIC_S = "form_generic_s"
    FORM_STIMULUS_S = "form_stimulus_s"
    FORM_IMAGE_S = "form_image_s"
    FORM_FEEDBACK = "form_feedback"
    FORM_END_SESSION = "form_end_session"
    FORM_CONSENT = "form_consent"
    FORM_SUBJECT_REGISTER = "form_subject_register"
    FORM_LOGIN_W_EMAIL = "form_login_w_email"
    FORM_SUBJECT_EMAIL = "form_subject_email"
    GROUP_TRIAL = "group_trial"


class DataFormat(models.Model):
    """The type of a question's answer: an enum with its choices, a number with a
    range, or free text. A value object: the loader reuses identical formats."""

    class Type(models.TextChoices):
        ENUM = "enum", "Choice from a list"
        INT = "int", "Whole number"
        FLOAT = "float", "Number"
        STRING = "string", "Short text"
        TEXT = "text", "Long text"

    df_type = models.CharField("type", max_length=10, choices=Type.choices)
    choices = models.JSONField(default=list, blank=True, help_text="Enum choices, in order.")
    range = models.JSONField(default=dict, blank=True, help_text='Numeric range, e.g. {"min": 1, "max": 7, "step": 1}.')
    signature = models.CharField(max_length=64, unique=True, editable=False)

    class Meta:
        ordering = ["df_type", "id"]

    def __str__(self):
        if self.df_type == self.Type.ENUM:
            shown = ", ".join(str(c) for c in self.choices[:4])
            more = "…" if len(self.choices) > 4 else ""
            return f"enum: {shown}{more}"
        if self.range:
            return f"{self.df_type} {self.range.get('min')}..{self.range.get('max')}"
        return self.df_type

    @staticmethod
    def make_signature(df_type: str, choices, range_) -> str:
        canon = json.dumps([df_type, choices or [], range_ or {}], sort_keys=True)
        return hashlib.sha256(canon.encode()).hexdigest()

    def clean(self):
        if self.df_type == self.Type.ENUM and not self.choices:
            raise ValidationError({"choices": "An enum data format needs at least one choice."})
        if self.df_type != self.Type.ENUM and self.choices:
            raise ValidationError({"choices": "Only enum data formats have choices."})
        if self.range:
            lo, hi = self.range.get("min"), self.range.get("max")
            if lo is not None and hi is not None and lo >= hi:
                raise ValidationError({"range": "min must be below max."})

    def save(self, *args, **kwargs):
        self.signature = self.make_signature(self.df_type, self.choices, self.range)
        super().save(*args, **kwargs)


class Question(models.Model):
    """One question. ``key`` is the variable name that answers are stored and
    exported under. Questions created by a definition file are owned by its
    experiment; questions made in the editor have no owner and can be shared."""

    key = models.SlugField(max_length=100, help_text="Variable name for the answer.")
    text = models.TextField()
    widget = models.CharField(max_length=12, choices=WidgetType.choices)
    data_format = models.ForeignKey(DataFormat, on_delete=models.PROTECT, related_name="questions")
    owner = models.ForeignKey("runner.Experiment", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="question_key_per_owner"),
        ]

    def __str__(self):
        return self.key


class Form(models.Model):
    """A page of questions. ``header`` and ``footer`` are HTML shown around them."""

    name = models.SlugField(max_length=100)
    title = models.CharField(max_length=200, blank=True)
    header = models.TextField(blank=True)
    footer = models.TextField(blank=True)
    questions = models.ManyToManyField(Question, through="FormXQuestion", related_name="forms")
    owner = models.ForeignKey("runner.Experiment", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="form_name_per_owner"),
        ]

    def __str__(self):
        return self.name


class FormXQuestion(models.Model):
    form = models.ForeignKey(Form, on_delete=models.CASCADE, related_name="form_questions")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    order = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    required = models.BooleanField(default=False)

    class Meta:
        ordering = ["form", "order"]
        constraints = [
            models.UniqueConstraint(fields=["form", "order"], name="fxq_order_unique"),
            models.UniqueConstraint(fields=["form", "question"], name="fxq_question_once"),
        ]

    def __str__(self):
        return f"{self.form} #{self.order}: {self.question}"


class Experiment(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_group = models.BooleanField(default=False)
    group_size = models.PositiveIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="Handed to callbacks.")
    group_flow = models.CharField(max_length=200, blank=True, help_text="Module with group hooks, e.g. demo.colors.")
    data_policy = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    start_date = models.DateTimeField(null=True, blank=True)
    end_date = models.DateTimeField(null=True, blank=True)
    sona_url = models.URLField(
        "SONA credit callback",
        max_length=500,
        blank=True,
        help_text="SONA client-side completion URL; XXXX is replaced by the survey code.",
    )
    prolific_completion_url = models.URLField(max_length=500, blank=True)
    dropout = models.JSONField(
        default=dict, blank=True, help_text="Group flow control: {after_seconds, policy} (docs/definitions.md)."
    )
    lobby = models.JSONField(
        default=dict,
        blank=True,
        help_text="Group flow control: {min_size, max_size, wait_seconds, release_completion_code}.",
    )
    forms = models.ManyToManyField(Form, through="ExperimentXForm", related_name="experiments")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return f"{self.title} ({self.slug})"


JSPSYCH_WIDTHS = {"normal": 720, "wide": 1200}  # page width in px for the named widths
JSPSYCH_WIDTH_RANGE = (320, 2400)  # a width given in px must lie in here


def jspsych_width_px(value) -> int:
    """The page width in px for a ``jspsych_width`` setting: "normal", "wide" or a number of
    pixels (an int or a string of digits). Raises ``ValueError`` naming the accepted values."""
    text = str(value).strip().lower()
    if text in JSPSYCH_WIDTHS:
        return JSPSYCH_WIDTHS[text]
    low, high = JSPSYCH_WIDTH_RANGE
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"jspsych_width must be normal, wide or a number of pixels from {low} to {high}")
    return int(text)


def validate_jspsych_width(value) -> None:
    try:
        jspsych_width_px(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class ExperimentXForm(models.Model):
    """A form's place in an experiment, with its handler, callbacks and loop."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="experiment_forms")
    form = models.ForeignKey(Form, on_delete=models.PROTECT, related_name="+")
    order = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    handler = models.CharField(max_length=40, choices=Handler.choices, default=Handler.FORM_GENERIC)
    condition_script = models.CharField(max_length=200, blank=True)
    stimulus_script = models.CharField(max_length=200, blank=True)
    repeat = models.PositiveIntegerField(
        null=True, blank=True, help_text="Loop: times to run the loop (on its last form)."
    )
    goto = models.PositiveIntegerField(
        null=True, blank=True, help_text="Loop: order of the form the loop goes back to."
    )
    break_loop_button = models.BooleanField(default=False)
    break_loop_button_text = models.CharField(max_length=100, default="Leave the loop", blank=True)
    continue_button_text = models.CharField(max_length=100, default="Next", blank=True)
    jspsych_width = models.CharField(
        max_length=10,
        default="normal",
        validators=[validate_jspsych_width],
        help_text="Page width: normal (720 px), wide (1200 px) or a number of pixels (320-2400), "
        "for jsPsych stimuli wider than the normal page.",
    )
    flow = models.JSONField(
        default=dict,
        blank=True,
        help_text="group_trial flow control: timeout_seconds, on_timeout, auto_advance, auto_advance_delay_seconds.",
    )

    class Meta:
        ordering = ["experiment", "order"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "order"], name="exf_order_unique"),
        ]

    def __str__(self):
        return f"{self.experiment.slug} #{self.order}: {self.form.name} ({self.handler})"

    @property
    def page_width_px(self) -> int:
        """The participant page's width for this form (``jspsych_width``)."""
        try:
            return jspsych_width_px(self.jspsych_width)
        except ValueError:
            return JSPSYCH_WIDTHS["normal"]

    def clean(self):
        if (self.repeat is None) != (self.goto is None):
            raise ValidationError("A loop needs both repeat and goto.")
        if self.goto is not None and self.order is not None and self.goto > self.order:
            raise ValidationError({"goto": "A loop can only go back to this form or an earlier one."})


class Study(models.Model):
    """An ordered set of experiments. Pseudonyms are per study when an
    experiment belongs to one (the same person, the same id across its parts)."""

    slug = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    experiments = models.ManyToManyField(Experiment, through="StudyXExperiment", related_name="studies")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "studies"

    def __str__(self):
        return self.title


class StudyXExperiment(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="study_experiments")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    order = models.PositiveIntegerField(validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["study", "order"]
        constraints = [
            models.UniqueConstraint(fields=["study", "order"], name="sxe_order_unique"),
            models.UniqueConstraint(fields=["study", "experiment"], name="sxe_experiment_once"),
        ]
