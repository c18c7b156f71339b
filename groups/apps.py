from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "groups"
    verbose_name = "Live group sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .lockstep import register

        register()  # the lockstep group_trial replaces the runner's plain one
        from .flowhandlers import register as register_flow

        register_flow()  # the flow-control timers' handlers (issue 20)
