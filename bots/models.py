from django.conf import settings
from django.db import models


class Rehearsal(models.Model):
    """A rehearsal started from the editor's *Rehearse* button: N bots in a new group
    session (or on tickets, solo) of this server; the report when done."""

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        INTERRUPTED = "interrupted"  # the server process running it stopped (bots.services.reap_ghosts)

    experiment = models.ForeignKey("runner.Experiment", on_delete=models.CASCADE, related_name="rehearsals")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    count = models.PositiveIntegerField()
    url = models.CharField(max_length=300)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)
    # Where it runs: a background thread of this server process, alive while ``heartbeat``
    # is renewed (bots.services); a record whose process is gone is marked interrupted.
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"Rehearsal {self.pk} of {self.experiment.slug} ({self.count} bots, {self.status})"
