from django.apps import AppConfig


class RunnerConfig(AppConfig):
    name = "runner"
    verbose_name = "Experiments and participant runs"
    default_auto_field = "django.db.models.BigAutoField"
