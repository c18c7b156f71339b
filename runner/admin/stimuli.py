"""Editor pages for stimuli and their attributes."""

from __future__ import annotations

from django.contrib import admin

from runner.models import Attribute, Stimulus, StimulusXAttribute


class StimulusXAttributeInline(admin.TabularInline):
    model = StimulusXAttribute
    extra = 0
    autocomplete_fields = ("attribute",)


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    inlines = (StimulusXAttributeInline,)
    list_display = ("name", "file_format", "duration", "location", "created")
    list_filter = ("file_format",)
    search_fields = ("name", "description")


@admin.register(Attribute)
class AttributeAdmin(admin.ModelAdmin):
    list_display = ("name", "attribute_type", "attribute_class")
    list_filter = ("attribute_type",)
    search_fields = ("name", "attribute_class")
