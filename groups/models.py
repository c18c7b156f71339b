"""Live group sessions: groups, sessions with codes and lockstep state,
membership of participant sessions, and the step log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Group(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Phase(models.TextChoices):
    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"
    ENDED = "ended"
    ABORTED = "aborted"


class GroupSession(models.Model):
    experiment = models.ForeignKey("runner.Experiment", on_delete=models.PROTECT, related_name="group_sessions")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="sessions")
    ticket = models.OneToOneField(
        "runner.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="group_session"
    )
    participant_code = models.CharField(max_length=8, db_index=True)
    experimenter_code = models.CharField(max_length=8, db_index=True)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.WAITING)
    step = models.IntegerField(default=0)
    version = models.BigIntegerField(default=1, help_text="Grows with every change.")
    participant_version = models.BigIntegerField(default=1, help_text="Version of the last change participants see.")
    changed_ms = models.BigIntegerField(default=0, help_text="Server time of the last change, ms since the epoch.")
    exit_loop_step = models.IntegerField(null=True, blank=True, help_text="Step at which the loop was exited.")
    deadline_ms = models.BigIntegerField(null=True, blank=True, help_text="The current step's timer runs out (ms).")
    timer_remaining_ms = models.BigIntegerField(null=True, blank=True, help_text="A paused timer's time left (ms).")
    timed_out_step = models.IntegerField(null=True, blank=True, help_text="Step whose timer ran out.")
    context = models.JSONField(default=dict, blank=True, help_text="Checkpoint of the shared context.")
    shared_params = models.JSONField(default=dict, blank=True, help_text="Current step's parameters.")
    notes = models.TextField(blank=True)
    expected_size = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    experimenters = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="attached_group_sessions")

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"Group session {self.pk} ({self.experiment.slug}, {self.phase})"


class Membership(models.Model):
    class Status(models.TextChoices):
        JOINED = "joined"
        WAITING = "waiting"
        ANSWERING = "answering"
        RESPONDED = "responded"
        FINISHED = "finished"
        KICKED = "kicked"
        STANDBY = "standby"  # lobby: arrived when the session was full, may replace a dropout
        RELEASED = "released"  # lobby: not placed within wait_seconds, left with the code

    group_session = models.ForeignKey(GroupSession, on_delete=models.CASCADE, related_name="memberships")
    session = models.OneToOneField("runner.Session", on_delete=models.CASCADE, related_name="group_membership")
    pseudonym = models.CharField(max_length=32)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.JOINED)
    responded_step = models.IntegerField(null=True, blank=True)
    connections = models.PositiveIntegerField(default=0, help_text="Open participant sockets.")
    form = models.CharField(max_length=100, blank=True, help_text="Form last served to the participant.")
    acked_version = models.BigIntegerField(default=0)
    flag = models.CharField(max_length=12, blank=True, help_text="This step's flow flag: timed_out or skipped.")
    offline_since_ms = models.BigIntegerField(null=True, blank=True)
    dropped_at_ms = models.BigIntegerField(null=True, blank=True, help_text="Declared dropped out at (ms).")
    bot = models.BooleanField(default=False, help_text="A bot plays on for this dropped-out participant.")
    replaced_by = models.CharField(max_length=32, blank=True, help_text="Standby pseudonym who took the place.")
    joined = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group_session", "joined"]
        constraints = [
            models.UniqueConstraint(fields=["group_session", "pseudonym"], name="membership_pseudonym_unique"),
        ]

    def __str__(self):
        return f"{self.pseudonym} in {self.group_session_id}"


class ProcessConnections(models.Model):
    """How many sockets of one participant one server process holds, as counted into
    ``Membership.connections`` (which is the sum of these rows). ``process`` is the
    process's lease id (``realtime.leases``): when its lease expires (the process died),
    another process subtracts its rows and deletes them (``groups.presence``)."""

    group_session = models.ForeignKey(GroupSession, on_delete=models.CASCADE, related_name="+")
    pseudonym = models.CharField(max_length=32)
    process = models.CharField(max_length=32, db_index=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group_session", "pseudonym", "process"], name="process_connections_unique"
            ),
        ]


class StepLog(models.Model):
    group_session = models.ForeignKey(GroupSession, on_delete=models.CASCADE, related_name="step_log")
    step = models.IntegerField()
    action = models.CharField(max_length=20)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField()
    at_ms = models.BigIntegerField(help_text="Server time, ms since the epoch.")
    shared_params = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["group_session", "at_ms", "id"]


class Timer(models.Model):
    """A deadline of a group session (a step timer, an auto-advance, a dropout, a lobby
    release), fired once by one server process (``groups.timers``): the row is the
    timer, so it survives a restart of every process."""

    group_session = models.ForeignKey(GroupSession, on_delete=models.CASCADE, related_name="timers")
    kind = models.CharField(max_length=20)
    key = models.CharField(max_length=64, help_text="What the timer is for, e.g. the step or participant.")
    due_ms = models.BigIntegerField(help_text="Fire at this server time, ms since the epoch.")
    fired_ms = models.BigIntegerField(null=True, blank=True, help_text="When a process fired it.")
    fired_by = models.CharField(max_length=32, blank=True, help_text="Lease id of the process that fired it.")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group_session", "kind", "key"], name="timer_unique"),
        ]
        indexes = [
            models.Index(fields=["due_ms"], name="timer_pending", condition=models.Q(fired_ms__isnull=True)),
        ]

    def __str__(self):
        return f"{self.kind} {self.key} of {self.group_session_id} at {self.due_ms}"


class StepOnset(models.Model):
    """When a step appeared on a participant's live page (docs/groups.md, "The live page"):
    the onset the page achieved on the server clock and how late it was, reported over the
    socket at the reveal (or with the answer). One row per participant and step, the first
    report kept."""

    group_session = models.ForeignKey(GroupSession, on_delete=models.CASCADE, related_name="onsets")
    pseudonym = models.CharField(max_length=32)
    step = models.IntegerField()
    starts_at = models.BigIntegerField(null=True, blank=True, help_text="Planned onset, server ms since the epoch.")
    onset_ms = models.BigIntegerField(help_text="Achieved onset, server clock, ms since the epoch.")
    late_ms = models.IntegerField(default=0, help_text="How late the content was ready (0: in time).")
    ready_ms = models.BigIntegerField(null=True, blank=True, help_text="Content ready, server clock.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group_session", "pseudonym", "step"], name="step_onset_once"),
        ]
        indexes = [models.Index(fields=["group_session", "step"])]

    def __str__(self):
        return f"{self.group_session_id}/{self.pseudonym}@{self.step}"
