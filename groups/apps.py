from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "groups"
    verbose_name = "Live group sessions"
    default_auto_field = "django.db.models.BigAutoField"
