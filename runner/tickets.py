"""Creating tickets and their run URLs (PyEnsemble's "Creating tickets").

Master tickets can be used by many participants, user tickets once. Codes come
from ``secrets`` (``runner.models.runs.new_ticket_code``: 192 bits, URL-safe).
Group tickets are made by the groups app when a group session starts.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from runner.models import Experiment, Ticket

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
MAX_TICKETS_PER_CALL = getattr(settings, "MAX_TICKETS_PER_CALL", 10_000)
CREATABLE_TYPES = (Ticket.Type.MASTER.value, Ticket.Type.USER.value)


class TicketError(ValueError):
    """Bad input to ``create_tickets``; the message says what to change."""


def create_tickets(
    *,
    experiment: Experiment,
    type: str,
    count: int = 1,
    expires: datetime | None = None,
    valid_from: datetime | None = None,
    created_by=None,
    label: str = "",
) -> list[Ticket]:
    """Create ``count`` master or user tickets for ``experiment``, all or none.

    Raises TicketError for an unknown type, a count outside 1..MAX_TICKETS_PER_CALL,
    a naive datetime, an expiry in the past or not after ``valid_from``.
    Runs in one transaction; nothing is broadcast.
    """
    if type not in CREATABLE_TYPES:
        raise TicketError(f"ticket type must be one of {', '.join(CREATABLE_TYPES)}, not {type!r}")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_TICKETS_PER_CALL:
        raise TicketError(f"count must be a whole number from 1 to {MAX_TICKETS_PER_CALL}, not {count!r}")
    for name, value in (("expires", expires), ("valid_from", valid_from)):
        if value is not None and timezone.is_naive(value):
            raise TicketError(f"{name} must carry a time zone")
    if expires is not None and expires <= timezone.now():
        raise TicketError(f"expires ({expires.isoformat()}) is already in the past")
    if expires is not None and valid_from is not None and expires <= valid_from:
        raise TicketError("expires must be after valid_from")
    tickets = [
        Ticket(
            experiment=experiment,
            type=type,
            expires=expires,
            valid_from=valid_from,
            created_by=created_by,
            label=label,
        )
        for _ in range(count)
    ]
    with transaction.atomic():
        return Ticket.objects.bulk_create(tickets)


def run_url(ticket: Ticket, base: str = DEFAULT_BASE_URL) -> str:
    """The participant link of a ticket: ``<base>/run/<experiment_id>/start/?tc=<code>``."""
    return f"{base.rstrip('/')}/run/{ticket.experiment_id}/start/?tc={quote(ticket.code, safe='')}"
