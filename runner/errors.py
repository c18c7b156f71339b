"""Errors of the participant runner. Each carries a machine ``code`` (STYLE.md 8)
and, for errors a participant can meet, the HTTP status and friendly text of its page."""

from __future__ import annotations


class RunError(Exception):
    """Base class: ``code`` for tests and logs, ``status``/``title``/``message`` for the page."""

    status = 400
    title = "This page cannot be shown"

    def __init__(self, message: str, *, code: str, status: int | None = None, title: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title


class TicketError(RunError):
    """A start link whose ticket cannot start a run.

    Codes and statuses: ``ticket_missing`` 400, ``ticket_not_found`` 404,
    ``ticket_wrong_experiment`` 404, ``ticket_used`` 409, ``ticket_not_yet_valid`` 403,
    ``ticket_expired`` 410, ``experiment_not_found`` 404, ``experiment_closed`` 403.
    """


class NoRunError(RunError):
    """A runner page requested without a run cookie for this experiment (code ``no_run``)."""

    status = 403

    @classmethod
    def in_this_browser(cls) -> NoRunError:
        """The error of a browser whose run cookie names no run of the experiment."""
        return cls(
            "We could not find your session in this browser. Please open the study link you were given again "
            "(sessions are kept per browser; private windows forget them).",
            code="no_run",
            title="Session not found",
        )


class CallbackFailed(RunError):
    """An experiment callback raised; the surrounding transaction is rolled back.

    ``callback`` is the dotted path; the original exception is ``__cause__``.
    """

    status = 500
    title = "Something went wrong on our side"

    def __init__(self, callback: str, *, form_order: int):
        super().__init__(
            "The study hit a technical problem while preparing the next page. Your earlier answers are safe. "
            "Please reload this page in a moment; if the problem persists, contact the research team.",
            code="callback_failed",
        )
        self.callback = callback
        self.form_order = form_order


class BadCallbackResult(Exception):
    """A callback returned something the handler cannot use (wrapped into CallbackFailed)."""
