"""Who took part and what they answered: tickets, subjects, sessions, responses."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from encrypted_model_fields.fields import (
    EncryptedCharField,
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedTextField,
)


def new_ticket_code() -> str:
    """An unguessable ticket secret (192 bits from ``secrets``), URL-safe."""
    return secrets.token_urlsafe(settings.TICKET_SECRET_BYTES)


def new_run_token() -> str:
    return secrets.token_urlsafe(32)


class Ticket(models.Model):
    class Type(models.TextChoices):
        MASTER = "master", "Master (many participants)"
        USER = "user", "User (one participant)"
        GROUP = "group", "Group session"

    experiment = models.ForeignKey("runner.Experiment", on_delete=models.CASCADE, related_name="tickets")
    code = models.CharField(max_length=64, unique=True, default=new_ticket_code, editable=False)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.MASTER)
    valid_from = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)
    used = models.BooleanField(default=False, help_text="A user ticket is used once.")
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    label = models.CharField(max_length=200, blank=True, help_text="Your note, e.g. 'lab PCs'.")

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.get_type_display()} ticket for {self.experiment.slug}"

    def is_valid_now(self, now=None) -> bool:
        now = now or timezone.now()
        if self.valid_from and now < self.valid_from:
            return False
        if self.expires and now >= self.expires:
            return False
        return not (self.type == self.Type.USER and self.used)


class Subject(models.Model):
    """A participant. The key is random; personal fields are encrypted at rest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name_first = EncryptedCharField(max_length=100, blank=True)
    name_last = EncryptedCharField(max_length=100, blank=True)
    email = EncryptedEmailField(blank=True)
    email_hmac = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="HMAC of the normalised email, to find a subject without decrypting every row.",
    )
    email_verified = models.BooleanField(default=False)
    dob = EncryptedDateField("date of birth", null=True, blank=True)
    phone = EncryptedCharField(max_length=50, blank=True)
    address = EncryptedTextField(blank=True)
    prolific_pid = EncryptedCharField(max_length=100, blank=True)
    prolific_pid_hmac = models.CharField(max_length=64, blank=True, db_index=True)
    excluded = models.BooleanField(default=False)
    exclusion_reason = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"Subject {str(self.id)[:8]}"


class Session(models.Model):
    """One participant's run through one experiment, with its run state."""

    experiment = models.ForeignKey("runner.Experiment", on_delete=models.PROTECT, related_name="sessions")
    subject = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.PROTECT, related_name="sessions")
    ticket = models.ForeignKey(Ticket, null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions")
    run_token = models.CharField(max_length=64, unique=True, default=new_run_token, editable=False)
    start = models.DateTimeField(default=timezone.now)
    end = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, blank=True, help_text="The browser's IANA time zone.")
    age = models.PositiveIntegerField(null=True, blank=True)
    excluded = models.BooleanField(default=False)
    exclusion_reason = models.TextField(blank=True)
    is_preview = models.BooleanField(default=False, help_text="An experimenter trying the experiment.")
    is_bot = models.BooleanField(default=False, help_text="A scripted participant (manage.py run_bots, a rehearsal).")
    sona_code = models.CharField(max_length=100, blank=True)
    prolific_study_id = models.CharField(max_length=100, blank=True)
    prolific_session_id = models.CharField(max_length=100, blank=True)
    # Run state (server-side, so reloads resume and URLs cannot skip ahead).
    current_order = models.PositiveIntegerField(default=1)
    state = models.JSONField(default=dict, blank=True, help_text="Loop counters, cached stimulus.")
    clock_offset_ms = models.FloatField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-start"]

    def __str__(self):
        return f"Session {self.pk} of {self.experiment.slug}"

    @property
    def finished(self) -> bool:
        return self.end is not None


class Response(models.Model):
    """One answer: a question's value, or one jsPsych trial's data.

    ``item`` names what was answered (the question key, or ``jspsych:<index>``)
    so that a unique constraint makes every submission idempotent.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="responses")
    subject = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    experiment = models.ForeignKey("runner.Experiment", on_delete=models.PROTECT, related_name="+")
    form = models.ForeignKey("runner.Form", on_delete=models.PROTECT, related_name="+")
    form_order = models.PositiveIntegerField()
    visit = models.PositiveIntegerField(default=1, help_text="Loop iteration, from 1.")
    item = models.CharField(max_length=120)
    question = models.ForeignKey("runner.Question", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    value = models.JSONField(null=True, blank=True)
    jspsych_data = models.JSONField(null=True, blank=True)
    trial_index = models.IntegerField(null=True, blank=True)
    stimulus = models.ForeignKey("runner.Stimulus", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    served_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(default=timezone.now)
    client_time_ms = models.BigIntegerField(null=True, blank=True, help_text="Browser clock at submit.")
    group_session = models.ForeignKey(
        "groups.GroupSession", null=True, blank=True, on_delete=models.PROTECT, related_name="responses"
    )
    step = models.IntegerField(null=True, blank=True)
    shared_params = models.JSONField(null=True, blank=True)
    onset_ms = models.BigIntegerField(null=True, blank=True, help_text="Live page: onset on the server clock (ms).")
    onset_late_ms = models.IntegerField(null=True, blank=True, help_text="Live page: how late the onset was (ms).")

    class Meta:
        ordering = ["session", "form_order", "visit", "id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "form_order", "visit", "item"], name="response_once_per_visit"),
        ]
        indexes = [models.Index(fields=["experiment", "session"]), models.Index(fields=["group_session", "step"])]

    def __str__(self):
        return f"{self.session_id}/{self.form_order}.{self.visit}/{self.item}"
