"""Export presets, the audit log of identifiable exports, and background export jobs."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExportFormat(models.TextChoices):
    JSON = "json", "JSON (zip of related files)"
    CSV_LONG = "csv-long", "CSV, long (one row per answer or trial)"
    CSV_WIDE = "csv-wide", "CSV, wide (one row per session)"
    PSYCHDS = "psychds", "Psych-DS dataset (zip)"


class ExportPreset(models.Model):
    """A named choice of format, columns and session filters, per experiment."""

    experiment = models.ForeignKey("runner.Experiment", on_delete=models.CASCADE, related_name="export_presets")
    name = models.CharField(max_length=100)
    format = models.CharField(max_length=10, choices=ExportFormat.choices, default=ExportFormat.CSV_LONG)
    columns = models.JSONField(default=list, blank=True, help_text="Column names; empty means the defaults.")
    filters = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["experiment", "name"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="export_preset_name_once")]

    def __str__(self):
        return f"{self.name} ({self.format})"


class ExportAudit(models.Model):
    """One export that contained identifying columns: who, when, what."""

    at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    who = models.CharField(max_length=200, help_text="Username, or the command-line user.")
    experiment = models.ForeignKey("runner.Experiment", null=True, on_delete=models.SET_NULL, related_name="+")
    experiment_slug = models.CharField(max_length=100)
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    columns = models.JSONField(default=list)
    identifying_columns = models.JSONField(default=list)
    filters = models.JSONField(default=dict)
    file_name = models.CharField(max_length=300)

    class Meta:
        ordering = ["-at"]

    def __str__(self):
        return f"{self.who} exported {self.experiment_slug} ({', '.join(self.identifying_columns)}) at {self.at}"


class ExportJob(models.Model):
    """An export run in the background from the export page, polled for progress."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    experiment = models.ForeignKey("runner.Experiment", on_delete=models.CASCADE, related_name="export_jobs")
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    columns = models.JSONField(default=list, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    message = models.CharField(max_length=300, blank=True)
    file = models.FileField(upload_to="exports/", max_length=500, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="Files written with row counts.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"Export {self.pk} of {self.experiment_id} ({self.status})"
