"""manage.py create_tickets --experiment SLUG --type master|user [--count N] [--expires ISO8601]."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from runner.models import Experiment
from runner.tickets import CREATABLE_TYPES, DEFAULT_BASE_URL, TicketError, create_tickets, run_url


def parse_when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; one without a zone is UTC (docs/definitions.md), whatever
    ``TIME_ZONE`` says; a date alone means midnight UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 date-time (e.g. 2026-12-31T18:00:00Z)") from None
    return timezone.make_aware(when, UTC) if timezone.is_naive(when) else when


class Command(BaseCommand):
    help = "Create tickets for an experiment and print one run URL per line."

    def add_arguments(self, parser):
        parser.add_argument("--experiment", required=True, metavar="SLUG")
        parser.add_argument("--type", required=True, choices=CREATABLE_TYPES)
        parser.add_argument("--count", type=int, default=1, help="how many tickets (default 1)")
        parser.add_argument("--expires", metavar="ISO8601", help="when the tickets stop working")
        parser.add_argument("--valid-from", metavar="ISO8601", help="when the tickets start working")
        parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"server address (default {DEFAULT_BASE_URL})")
        parser.add_argument("--label", default="", help="a note stored with the tickets")

    def handle(self, *args, **options):
        try:
            experiment = Experiment.objects.get(slug=options["experiment"])
        except Experiment.DoesNotExist:
            raise CommandError(f"no experiment with slug {options['experiment']!r}") from None
        base = options["base_url"]
        if not base.startswith(("http://", "https://")):
            raise CommandError(f"--base-url must start with http:// or https://, not {base!r}")
        try:
            tickets = create_tickets(
                experiment=experiment,
                type=options["type"],
                count=options["count"],
                expires=parse_when(options["expires"], "--expires"),
                valid_from=parse_when(options["valid_from"], "--valid-from"),
                label=options["label"],
            )
        except TicketError as exc:
            raise CommandError(str(exc)) from None
        for ticket in tickets:
            self.stdout.write(run_url(ticket, base))
