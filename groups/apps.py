from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "groups"
    verbose_name = "Live group sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime import ports
        from runner import services as runner_services
        from runner.views import run as runner_run

        from . import flowhandlers, hooks, live, live_content, live_page, presence, selectors, services, store
        from .lockstep import register

        register()  # the lockstep group_trial replaces the runner's plain one
        hooks.use_context_writer(services.group_session_set_context)
        runner_services.use_group_attach(services.attach_participant)
        runner_run.use_group_page(live_page.serve)  # a reload of the live page: reads only
        ports.register(
            ports.GroupPorts(
                read_body=store.read_wire_body,
                authenticate_participants=selectors.authenticate_participants,
                authenticate_experimenter=selectors.authenticate_experimenter,
                commands={**services.EXPERIMENTER_COMMANDS, **flowhandlers.FLOW_COMMANDS},
                participants_ready=services.participants_ready,
                check_ready=services.check_ready,
                record_presence=presence.record_presence_version,
                record_acks=presence.record_acks,
                counting_processes=presence.counting_processes,
                sweep_processes=presence.sweep_processes,
                step_content=live_content.content_text,
                prebuilt_content=live_content.built_text,
                record_reports=presence.record_reports,
            )
        )
        flowhandlers.register()  # the flow-control timers' handlers (issue 20)
        live.use_prebuild(live_content.prebuild, live_content.send_reads)
        live.use_warm(live_page.warm)
