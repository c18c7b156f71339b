"""Read-only views of the export audit log and jobs in the editor; presets are editable."""

from django.contrib import admin

from .models import ExportAudit, ExportJob, ExportPreset


@admin.register(ExportAudit)
class ExportAuditAdmin(admin.ModelAdmin):
    list_display = ("at", "who", "experiment_slug", "format", "identifying_columns", "file_name")
    list_filter = ("format", "experiment_slug")
    search_fields = ("who", "experiment_slug", "file_name")
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "experiment", "format", "status", "progress", "created", "created_by")
    list_filter = ("status", "format")
    readonly_fields = [f.name for f in ExportJob._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ExportPreset)
class ExportPresetAdmin(admin.ModelAdmin):
    list_display = ("name", "experiment", "format", "updated")
    list_filter = ("format",)
