"""Reads for the participant runner (no writes here)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar

from project.core.rows import Select
from runner.flow import Step
from runner.models import Experiment, ExperimentXForm, FormXQuestion, Session
from runner.run_cookie import session_from_cookies

# Read on every request of a run (project/core/rows.py says why by hand).
_POSITIONS = Select(ExperimentXForm, related=("form",), where='t0."experiment_id" = %s ORDER BY t0."order"')
_QUESTIONS = Select(
    FormXQuestion, related=("question", "question__data_format"), where='t0."form_id" = %s ORDER BY t0."order"'
)


#: Inside ``reads_once()`` (one GET of a run page): what was read once, by (kind, pk).
_once: ContextVar[dict | None] = ContextVar("runner_reads_once", default=None)


@contextmanager
def reads_once(known: dict | None = None):
    """Within this block the experiment's positions and a form's questions are read from
    the database once (a run page's GET resolves its visit in several places: each read
    them again). Neither changes while one request is served. ``known``: rows the caller
    has already read (``known_reads``)."""
    token = _once.set(dict(known or {}))
    try:
        yield
    finally:
        _once.reset(token)


def known_reads(experiment_id: int, positions_: list, form_id: int, questions: list) -> dict:
    """What ``reads_once(known=...)`` takes: an experiment's positions and a form's questions."""
    return {("positions", experiment_id): positions_, ("questions", form_id): questions}


def _read_once(select: Select, kind: str, pk: int) -> list:
    memo = _once.get()
    if memo is None:
        return select.all(pk)
    if (kind, pk) not in memo:
        memo[(kind, pk)] = select.all(pk)
    return memo[(kind, pk)]


def positions(experiment: Experiment) -> list[ExperimentXForm]:
    """The experiment's forms in order, with their forms loaded."""
    return _read_once(_POSITIONS, "positions", experiment.pk)


def positions_of(experiment_id: int):
    """Send the read of ``positions`` of an experiment by its id; return a function giving
    them (``rows.Select.send``: inside ``rows.pipelined`` it travels with other reads)."""
    return _POSITIONS.send(experiment_id)


def steps_of(positions_: list[ExperimentXForm]) -> list[Step]:
    return [Step(p.order, p.repeat, p.goto) for p in positions_]


def position_at(positions_: list[ExperimentXForm], order: int) -> ExperimentXForm | None:
    """The position with ``order``, or else the first one after it (orders may have gaps)."""
    later = [p for p in positions_ if p.order >= order]
    return later[0] if later else None


def form_questions(form) -> list[FormXQuestion]:
    return _read_once(_QUESTIONS, "questions", form.pk)


def session_for_request(request, experiment_id: int) -> Session | None:
    """The session this browser runs for ``experiment_id`` (signed run cookie), or None."""
    return session_from_cookies(request.COOKIES, experiment_id)


def experiment_or_none(experiment_id: int) -> Experiment | None:
    return Experiment.objects.filter(pk=experiment_id).first()


#: How long this process trusts what it read of an experiment's kind (``is_group``).
KIND_SECONDS = 30.0
_kinds: dict[int, tuple[bool, float]] = {}


def is_group(experiment_id: int) -> bool:
    """Whether the experiment runs live groups, as read at most ``KIND_SECONDS`` ago by
    this process (False for an unknown id). Only for choosing how answers are stored:
    both ways give an answer the same result, so a stale value costs time, never data."""
    known = _kinds.get(experiment_id)
    now = time.monotonic()
    if known is None or now - known[1] > KIND_SECONDS:
        found = Experiment.objects.filter(pk=experiment_id).values_list("is_group", flat=True).first()
        if found is None:  # not kept: the ids in addresses are anyone's to make up
            return False
        known = _kinds[experiment_id] = (found, now)
    return known[0]


def session_responses(session: Session):
    from runner.models import Response

    return Response.objects.filter(session=session).select_related("question").order_by("form_order", "visit", "id")


__all__ = [
    "experiment_or_none",
    "form_questions",
    "is_group",
    "known_reads",
    "position_at",
    "positions",
    "session_for_request",
    "session_responses",
    "steps_of",
]
