"""Timelines that failed in a participant's browser (issue 17): what the experimenter sees."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class TimelineFailure(models.Model):
    """One report of a jsPsych timeline that could not run (unknown plugin or function, an
    exception, media that did not load). Nothing else is stored for that page. ``message``
    is the browser's error text, cut to ``MESSAGE_MAX`` characters; it names no participant.

    ``skipped_at`` is set when the experimenter let this run skip the form (console or editor).
    """

    MESSAGE_MAX = 500

    class Kind(models.TextChoices):
        UNKNOWN_PLUGIN = "unknown_plugin", "Unknown plugin"
        UNKNOWN_FUNCTION = "unknown_function", "Unknown function"
        UNKNOWN_TIMELINE = "unknown_timeline", "Unknown timeline builder"
        SCRIPT = "script", "Package script failed to load"
        EXCEPTION = "exception", "Exception while running"
        MEDIA = "media", "Media failed to load"

    experiment = models.ForeignKey("runner.Experiment", on_delete=models.CASCADE, related_name="timeline_failures")
    session = models.ForeignKey("runner.Session", on_delete=models.CASCADE, related_name="timeline_failures")
    form = models.ForeignKey("runner.Form", on_delete=models.CASCADE, related_name="+")
    form_order = models.PositiveIntegerField()
    visit = models.PositiveIntegerField()
    nonce = models.CharField(max_length=64)
    group_session = models.ForeignKey(
        "groups.GroupSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=MESSAGE_MAX)
    created = models.DateTimeField(default=timezone.now)
    skipped_at = models.DateTimeField(null=True, blank=True)
    skipped_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["experiment", "created"]), models.Index(fields=["group_session", "created"])]

    def __str__(self):
        return f"{self.experiment_id}/{self.session_id}/{self.form_order}.{self.visit}: {self.kind}"
