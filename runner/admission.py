"""Who may start a run from a start link: the ticket and experiment checks, each refusal
with the title and text the participant sees (``runner.services.start_run`` asks)."""

from __future__ import annotations

from django.utils import timezone

from runner.errors import TicketError
from runner.models import Experiment, Ticket

TICKET_CODE_MAX = 200  # longer than any code we issue


def ticket_error(code: str) -> TicketError:
    texts = {
        "experiment_not_found": (404, "Study not found", "We could not find this study. Please check the link."),
        "ticket_missing": (
            400,
            "This link is incomplete",
            "The link you followed is missing its access code. Please use the full link you were given.",
        ),
        "ticket_not_found": (
            404,
            "Link not recognised",
            "This link is not valid. Please check that you copied the whole link.",
        ),
        "ticket_wrong_experiment": (
            404,
            "Link not recognised",
            "This link does not belong to this study. Please use the link you were given.",
        ),
        "ticket_used": (
            409,
            "This link has already been used",
            "Each personal link can be used once, and this one has been used already. "
            "If you did not finish, please contact the research team.",
        ),
        "ticket_not_yet_valid": (403, "Not open yet", "This link is not active yet. Please try again later."),
        "ticket_expired": (410, "This link has expired", "This link is no longer active. Thank you for your interest."),
        "experiment_closed": (403, "This study is closed", "This study is not taking part in sessions at the moment."),
    }
    status, title, message = texts[code]
    return TicketError(message, code=code, status=status, title=title)


def check_ticket(experiment: Experiment | None, ticket: Ticket | None, *, is_staff: bool) -> None:
    now = timezone.now()
    if experiment is None:
        raise ticket_error("experiment_not_found")
    if ticket is None:
        raise ticket_error("ticket_not_found")
    if ticket.experiment_id != experiment.pk:
        raise ticket_error("ticket_wrong_experiment")
    if ticket.type == Ticket.Type.USER and ticket.used:
        raise ticket_error("ticket_used")
    if ticket.valid_from and now < ticket.valid_from:
        raise ticket_error("ticket_not_yet_valid")
    if ticket.expires and now >= ticket.expires:
        raise ticket_error("ticket_expired")
    closed = (
        not experiment.is_active
        or (experiment.start_date and now < experiment.start_date)
        or (experiment.end_date and now >= experiment.end_date)
    )
    if closed and not is_staff:
        raise ticket_error("experiment_closed")


def locked_ticket(code: str) -> Ticket | None:
    """The Ticket of ``code``, locked (a user ticket starts one session only); None for
    no such ticket or a code no ticket can have (PostgreSQL refuses NUL)."""
    if "\x00" in code or len(code) > TICKET_CODE_MAX:
        return None
    return Ticket.objects.select_for_update().filter(code=code).first()
