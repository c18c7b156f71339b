"""Editor pages for tickets, subjects, sessions and responses.

Personal fields of subjects are encrypted at rest and never appear in a list;
run tokens never appear at all; responses are read-only.
"""

from __future__ import annotations

import json
from contextvars import ContextVar

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html
from django.utils.text import Truncator

from runner.models import Response, Session, Subject, Ticket
from runner.tickets import DEFAULT_BASE_URL, run_url

# The address the editor is reached at, for run links (per request: admins are shared objects).
_base_url: ContextVar[str] = ContextVar("editor_base_url", default=DEFAULT_BASE_URL)


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ("experiment", "type", "label", "valid_from", "expires", "used", "created", "run_link")
    list_filter = ("type", "used", ("experiment", admin.RelatedOnlyFieldListFilter))
    search_fields = ("label", "experiment__slug", "=code")
    list_select_related = ("experiment",)
    readonly_fields = ("code", "run_link", "used", "created", "created_by")
    fields = (
        "experiment",
        "type",
        "label",
        "valid_from",
        "expires",
        "code",
        "run_link",
        "used",
        "created",
        "created_by",
    )
    autocomplete_fields = ("experiment",)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["experiment", "type"] if obj is not None else fields

    def changelist_view(self, request, extra_context=None):
        _base_url.set(request.build_absolute_uri("/"))
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        _base_url.set(request.build_absolute_uri("/"))
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="run URL")
    def run_link(self, obj):
        if obj is None or not obj.pk:
            return "(saved tickets get a link)"
        url = run_url(obj, _base_url.get())
        return format_html(
            '<a href="{0}" class="run-link">{0}</a> '
            '<button type="button" class="button" data-url="{0}" '
            "onclick=\"navigator.clipboard.writeText(this.dataset.url);this.textContent='Copied'\">Copy</button>",
            url,
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):
    list_display = ("__str__", "created", "n_sessions", "excluded")
    list_filter = ("excluded", "email_verified")
    readonly_fields = ("id", "created", "email_hmac", "prolific_pid_hmac")
    fieldsets = (
        (None, {"fields": ("id", "created", "excluded", "exclusion_reason")}),
        (
            "Personal data (encrypted at rest; shown only here)",
            {
                "classes": ("collapse",),
                "fields": (
                    "name_first",
                    "name_last",
                    "email",
                    "email_verified",
                    "dob",
                    "phone",
                    "address",
                    "prolific_pid",
                    "email_hmac",
                    "prolific_pid_hmac",
                ),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_sessions=Count("sessions"))

    @admin.display(description="sessions", ordering="_sessions")
    def n_sessions(self, obj):
        return obj._sessions

    def has_add_permission(self, request):
        return False


SESSION_FIELDS = (
    "experiment",
    "subject",
    "ticket",
    "start",
    "end",
    "timezone",
    "age",
    "is_preview",
    "sona_code",
    "prolific_study_id",
    "prolific_session_id",
    "current_order",
    "state",
    "clock_offset_ms",
    "user_agent",
)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    """Read-only apart from the exclusion, which is the researcher's call."""

    list_display = ("id", "experiment", "subject", "start", "end", "finished", "is_preview", "excluded")
    list_filter = ("excluded", "is_preview", ("experiment", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("experiment", "subject")
    date_hierarchy = "start"
    fields = (*SESSION_FIELDS, "excluded", "exclusion_reason")
    readonly_fields = SESSION_FIELDS

    @admin.display(boolean=True, description="finished")
    def finished(self, obj):
        return obj.finished

    def has_add_permission(self, request):
        return False


def answer_text(value) -> str:
    """An answer as a person reads it: choices joined by commas (not a Python list),
    structured values as JSON, nothing as "-"."""
    if value is None:
        return "-"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    """Answers as stored; nobody edits data in the editor."""

    list_display = ("session", "form", "form_order", "visit", "item", "short_value", "step", "submitted_at")
    list_filter = (("experiment", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("session", "form", "session__experiment")
    search_fields = ("item",)
    exclude = ("value",)
    readonly_fields = ("answer",)

    @admin.display(description="value")
    def short_value(self, obj):
        return Truncator(answer_text(obj.value)).chars(60)

    @admin.display(description="value")
    def answer(self, obj):
        """The whole answer, wrapped: a long text stays inside the page."""
        return format_html(
            '<div style="white-space: pre-wrap; overflow-wrap: anywhere; max-width: 60rem">{}</div>',
            answer_text(obj.value),
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
