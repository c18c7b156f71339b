"""Editor pages for experiments (with their form sequence) and studies.

Extra pages on an experiment: the survey builder (<id>/builder/, runner/builder.py),
"Preview" (<id>/preview/), "Create tickets" (<id>/tickets/), "Download definition"
(<id>/definition.yaml); on the list: "New survey" (new-survey/), "Load definition"
(load/) and the "Copy experiment" action.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import NestedObjects
from django.core.exceptions import PermissionDenied
from django.db import models, router, transaction
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from runner.definitions import DefinitionError, dump_experiment, load_text
from runner.editing import copy_experiment, delete_experiment
from runner.models import Experiment, ExperimentXForm, ExperimentXStimulus, Study, StudyXExperiment
from runner.tickets import create_tickets, run_url
from runner.views import builder as builder_views

from .forms import (
    CreateTicketsForm,
    ExperimentAdminForm,
    ExperimentXFormFormSet,
    ExperimentXFormInlineForm,
    LoadDefinitionForm,
)


class ExperimentXFormInline(admin.TabularInline):
    model = ExperimentXForm
    form = ExperimentXFormInlineForm
    formset = ExperimentXFormFormSet
    extra = 0
    ordering = ("order",)
    autocomplete_fields = ("form",)
    fields = (
        "order",
        "form",
        "handler",
        "condition_script",
        "stimulus_script",
        "repeat",
        "goto",
        "break_loop_button",
        "break_loop_button_text",
        "continue_button_text",
        "jspsych_width",
    )
    verbose_name = "form in the sequence"
    verbose_name_plural = "form sequence (loops: put repeat and goto on the loop's last form)"

    class Media:
        css = {"all": ["css/editor.css"]}


class ExperimentXStimulusInline(admin.TabularInline):
    model = ExperimentXStimulus
    extra = 0
    autocomplete_fields = ("stimulus",)
    verbose_name_plural = "stimuli"


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentAdminForm
    inlines = (ExperimentXFormInline, ExperimentXStimulusInline)
    list_display = ("slug", "title", "is_group", "is_active", "n_sessions", "n_finished", "updated")
    list_filter = ("is_group", "is_active")
    search_fields = ("slug", "title", "description")
    readonly_fields = ("created", "updated")
    actions = ("copy_experiments",)
    fieldsets = (
        (None, {"fields": ("slug", "title", "description", "is_active", ("start_date", "end_date"))}),
        ("Group experiment", {"fields": ("is_group", "group_size", "group_flow")}),
        ("Callbacks and data", {"fields": ("params", "data_policy")}),
        ("Participant sources", {"fields": ("sona_url", "prolific_completion_url"), "classes": ("collapse",)}),
        ("History", {"fields": ("created", "updated"), "classes": ("collapse",)}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _sessions=Count("sessions", distinct=True),
                _finished=Count("sessions", filter=Q(sessions__end__isnull=False), distinct=True),
            )
        )

    @admin.display(description="sessions", ordering="_sessions")
    def n_sessions(self, obj):
        return obj._sessions

    @admin.display(description="finished", ordering="_finished")
    def n_finished(self, obj):
        return obj._finished

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The editor page also counts the experiment's failed jsPsych timelines and lists the
        latest, each open one with "skip this form for that run" (runner/failures.py)."""
        from runner import failures

        extra_context = dict(extra_context or {})
        if str(object_id).isdigit():
            extra_context["timeline_failures"] = failures.counts(int(object_id))
            extra_context["recent_failures"] = failures.recent(experiment_id=int(object_id), limit=10)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_deleted_objects(self, objs, request):
        """As the admin's, except that an experiment's own form links do not block deleting it."""
        to_delete, counts, perms_needed, _ = super().get_deleted_objects(objs, request)
        ids = {obj.pk for obj in objs}
        collector = NestedObjects(using=router.db_for_write(Experiment))
        collector.collect(objs)
        protected = [
            str(obj)
            for obj in collector.protected
            if not (isinstance(obj, ExperimentXForm) and obj.experiment_id in ids)
        ]
        return to_delete, counts, perms_needed, protected

    def delete_model(self, request, obj):
        delete_experiment(experiment=obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for experiment in queryset:
                delete_experiment(experiment=experiment)

    def _builder(self, fn):
        """A survey-builder view for one experiment, for editors who may change it."""

        def view(request, pk):
            experiment = get_object_or_404(Experiment, pk=pk)
            if not self.has_change_permission(request, experiment):
                raise PermissionDenied
            return fn(request, experiment)

        return self.admin_site.admin_view(view)

    def _new_survey_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        return builder_views.new_survey(request)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("new-survey/", view(self._new_survey_view), name="runner_experiment_new_survey"),
            path("<int:pk>/builder/", self._builder(builder_views.builder_page), name="runner_experiment_builder"),
            path(
                "<int:pk>/builder/save/",
                self._builder(builder_views.builder_save),
                name="runner_experiment_builder_save",
            ),
            path(
                "<int:pk>/builder/preview/",
                self._builder(builder_views.builder_preview),
                name="runner_experiment_builder_preview",
            ),
            path("<int:pk>/preview/", self._builder(builder_views.preview_run), name="runner_experiment_preview_run"),
            path("load/", view(self.load_definition_view), name="runner_experiment_load"),
            path("<int:pk>/tickets/", view(self.create_tickets_view), name="runner_experiment_tickets"),
            path("<int:pk>/definition.yaml", view(self.download_definition_view), name="runner_experiment_definition"),
            *super().get_urls(),
        ]

    def _context(self, request, title, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def create_tickets_view(self, request, pk):
        """Create master/user tickets via runner.tickets and show their run URLs."""
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        form = CreateTicketsForm(request.POST or None)
        urls = []
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            tickets = create_tickets(
                experiment=experiment,
                type=data["type"],
                count=data["count"],
                expires=data["expires"],
                valid_from=data["valid_from"],
                created_by=request.user,
                label=data["label"],
            )
            base = request.build_absolute_uri("/")
            urls = [run_url(ticket, base) for ticket in tickets]
            self.message_user(request, f"Created {len(tickets)} {data['type']} ticket(s).", messages.SUCCESS)
            form = CreateTicketsForm(initial={"type": data["type"], "count": data["count"]})
        context = self._context(
            request, f"Create tickets for {experiment.slug}", original=experiment, form=form, urls=urls
        )
        return TemplateResponse(request, "admin/runner/experiment/create_tickets.html", context)

    def download_definition_view(self, request, pk):
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        response = HttpResponse(dump_experiment(experiment), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{experiment.slug}.yaml"'
        return response

    def load_definition_view(self, request):
        """Upload a definition file; show every error by line, or load it and go to the experiment."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = LoadDefinitionForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                text = upload.read().decode("utf-8")
                result = load_text(
                    text=text,
                    source=upload.name,
                    create_only=form.cleaned_data["create_only"],
                    force=form.cleaned_data["force"],
                )
            except UnicodeDecodeError:
                errors = [f"{upload.name}:1: the file is not UTF-8 text"]
            except DefinitionError as exc:
                errors = exc.lines()
            else:
                note = "".join(f"\n{w.format(upload.name)}" for w in result.warnings)
                self.message_user(request, f"{result.experiment.slug}: {result.status}.{note}", messages.SUCCESS)
                return redirect(reverse("admin:runner_experiment_change", args=[result.experiment.pk]))
        context = self._context(request, "Load an experiment definition", form=form, errors=errors)
        return TemplateResponse(request, "admin/runner/experiment/load_definition.html", context)

    @admin.action(description="Copy selected experiments (with their forms)", permissions=["add"])
    def copy_experiments(self, request, queryset):
        for experiment in queryset:
            copy = copy_experiment(experiment=experiment)
            link = reverse("admin:runner_experiment_change", args=[copy.pk])
            self.message_user(
                request, format_html('Copied {} to <a href="{}">{}</a>.', experiment.slug, link, copy.slug)
            )


class StudyXExperimentInline(admin.TabularInline):
    model = StudyXExperiment
    extra = 0
    ordering = ("order",)
    autocomplete_fields = ("experiment",)
    verbose_name_plural = "experiments, in order"


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    inlines = (StudyXExperimentInline,)
    list_display = ("slug", "title", "n_experiments", "created")
    search_fields = ("slug", "title")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_experiments=Count("study_experiments"))

    @admin.display(description="experiments", ordering="_experiments")
    def n_experiments(self, obj):
        return obj._experiments
