"""Stimuli and their attributes (PyEnsemble's Stimulus/Attribute tables)."""

from __future__ import annotations

from django.db import models


class Stimulus(models.Model):
    name = models.CharField(max_length=200)
    location = models.FileField(upload_to="stimuli/", max_length=500, blank=True)
    description = models.TextField(blank=True)
    file_format = models.CharField(max_length=20, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds, for media.")
    attributes = models.ManyToManyField("Attribute", through="StimulusXAttribute", related_name="stimuli")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "stimuli"
        constraints = [models.UniqueConstraint(fields=["name"], name="stimulus_name_unique")]

    def __str__(self):
        return self.name


class Attribute(models.Model):
    class Type(models.TextChoices):
        TEXT = "text"
        DOUBLE = "double"

    name = models.CharField(max_length=100)
    attribute_type = models.CharField(max_length=10, choices=Type.choices)
    attribute_class = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["name", "attribute_type"], name="attribute_unique"),
        ]

    def __str__(self):
        return f"{self.name} ({self.attribute_type})"


class StimulusXAttribute(models.Model):
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="stimulus_attributes")
    attribute = models.ForeignKey(Attribute, on_delete=models.CASCADE, related_name="+")
    value_text = models.TextField(blank=True)
    value_double = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stimulus", "attribute"], name="sxa_once"),
        ]


class AttributeXAttribute(models.Model):
    parent = models.ForeignKey(Attribute, on_delete=models.CASCADE, related_name="children")
    child = models.ForeignKey(Attribute, on_delete=models.CASCADE, related_name="parents")
    mapping_name = models.CharField(max_length=100, blank=True)
    mapping_value_text = models.TextField(blank=True)
    mapping_value_double = models.FloatField(null=True, blank=True)


class ExperimentXStimulus(models.Model):
    experiment = models.ForeignKey("runner.Experiment", on_delete=models.CASCADE, related_name="experiment_stimuli")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name_plural = "experiment stimuli"
        constraints = [
            models.UniqueConstraint(fields=["experiment", "stimulus"], name="exs_once"),
        ]
