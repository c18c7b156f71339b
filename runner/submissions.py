"""What a POSTed visit is (:class:`Submission`), what becomes of it (:class:`SubmitResult`)
and a valid one processed in memory before any write (:class:`Taken`): the values
``runner.services`` and ``runner.batching`` pass between them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.handlers import Page
from runner.models import Session


@dataclass
class SubmitResult:
    """``kind``: ``stored`` (moved on), ``stay`` (same visit, e.g. email sent),
    ``duplicate`` (this visit was already stored), ``stale`` (not the current visit: nothing
    stored), ``invalid`` (form errors; ``form``/``page`` to re-render)."""

    kind: str
    form: Any = None
    page: Any = None


@dataclass(frozen=True)
class Submission:
    """One POSTed visit, as ``submit_form`` (and ``runner.batching``) take it. The run is
    ``session_id``, or (``session_id=None``) the run of ``experiment_id`` whose cookie
    holds ``run_token``: a batch finds the runs of all its answers in one statement."""

    session_id: int | None
    order: int
    visit: int
    nonce: str
    data: Any
    client_time_ms: int | None = None
    tz: str = ""
    absolute_url: Callable[[str], str] = lambda path: path
    experiment_id: int | None = None  # the run's, if the caller knows it (a batch reads its forms sooner)
    run_token: str = ""


@dataclass
class Taken:
    """A valid answer processed in memory (``take``): nothing written yet."""

    session: Session
    page: Page
    outcome: Any
    rows: list
    positions: list
    ident: dict
