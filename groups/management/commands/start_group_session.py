"""``manage.py start_group_session --experiment SLUG [--group NAME] [--size N] [--experimenter USERNAME]``

Prints one JSON object (SPEC section 1):
``{"group_session": ID, "participant_code": "ABCD", "experimenter_code": "WXYZ", "expires": ISO8601}``.
"""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from groups.services import start_group_session
from groups.state import GroupError


class Command(BaseCommand):
    help = "Start a live group session of a group experiment and print its codes as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--experiment", required=True, metavar="SLUG", help="slug of a group experiment")
        parser.add_argument("--group", metavar="NAME", help="group name (created if new)")
        parser.add_argument("--size", type=int, metavar="N", help="expected number of participants")
        parser.add_argument("--experimenter", metavar="USERNAME", help="staff user attached to the session")

    def handle(self, *args, experiment, group, size, experimenter, **options):
        from runner.models import Experiment

        exp = Experiment.objects.filter(slug=experiment).first()
        if exp is None:
            raise CommandError(f"No experiment with slug {experiment!r}.")
        user = None
        if experimenter:
            user = get_user_model().objects.filter(username=experimenter).first()
            if user is None:
                raise CommandError(f"No user {experimenter!r}.")
            if not user.is_staff:
                raise CommandError(f"User {experimenter!r} is not an experimenter (staff).")
        if group is not None and not group.strip():
            raise CommandError("--group needs a name.")
        try:
            gs = start_group_session(experiment=exp, group=group and group.strip(), size=size, experimenter=user)
        except GroupError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        payload = {
            "group_session": gs.pk,
            "participant_code": gs.participant_code,
            "experimenter_code": gs.experimenter_code,
            "expires": gs.expires.isoformat(),
        }
        self.stdout.write(json.dumps(payload))
