"""Editor pages for forms, questions and data formats."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.utils.text import Truncator

from runner.models import DataFormat, Form, FormXQuestion, Question

from .forms import DataFormatAdminForm, QuestionAdminForm


class FormXQuestionInline(admin.TabularInline):
    model = FormXQuestion
    extra = 0
    ordering = ("order",)
    autocomplete_fields = ("question",)
    fields = ("order", "question", "required")
    verbose_name_plural = "questions, in order"


@admin.register(Form)
class FormAdmin(admin.ModelAdmin):
    inlines = (FormXQuestionInline,)
    list_display = ("name", "title", "owner", "n_questions", "created")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "title")
    list_select_related = ("owner",)
    fields = ("name", "title", "header", "footer", "owner")
    readonly_fields = ("owner",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_questions=Count("form_questions"))

    @admin.display(description="questions", ordering="_questions")
    def n_questions(self, obj):
        return obj._questions


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    form = QuestionAdminForm
    list_display = ("key", "short_text", "widget", "data_format", "owner")
    list_filter = ("widget", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("key", "text")
    list_select_related = ("data_format", "owner")
    fields = ("key", "text", "widget", "data_format", "owner")
    readonly_fields = ("owner",)

    @admin.display(description="text")
    def short_text(self, obj):
        return Truncator(obj.text).chars(70)


@admin.register(DataFormat)
class DataFormatAdmin(admin.ModelAdmin):
    form = DataFormatAdminForm
    list_display = ("__str__", "df_type", "n_questions")
    list_filter = ("df_type",)
    readonly_fields = ("signature",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_questions=Count("questions"))

    @admin.display(description="questions", ordering="_questions")
    def n_questions(self, obj):
        return obj._questions
