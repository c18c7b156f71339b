"""The ``run`` object handed to experiment callbacks (SPEC section 4), and the one
place callbacks are called.

``condition_script(run, **params) -> bool`` and ``stimulus_script(run, **params)``
receive a :class:`RunContext`. ``params`` are the experiment's ``params``; a callback
receives the ones its signature names (all of them if it takes ``**kwargs``).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from runner.callbacks import resolve_callable
from runner.errors import CallbackFailed
from runner.subjects import apply_subject_fields

logger = logging.getLogger("runner.callbacks")


_UNREAD = object()


@dataclass
class RunContext:
    """What a callback may look at. ``responses`` is this session's earlier answers
    (a queryset of Response rows, oldest first); ``group`` is the group view the
    groups app provides for group experiments (None otherwise)."""

    session: Any
    experiment: Any
    form: Any  # runner.models.Form of the position being prepared
    position: Any  # its ExperimentXForm (order, handler, loop settings)
    visit: int
    params: dict = field(default_factory=dict)
    _group: Any = field(default=_UNREAD, repr=False)

    @property
    def group(self):
        """The group view (read when a callback first asks: most never do)."""
        if self._group is _UNREAD:
            self._group = _group_for(self.session)
        return self._group

    @property
    def subject(self):
        return self.session.subject

    @property
    def form_order(self) -> int:
        return self.position.order

    @property
    def responses(self):
        from runner.models import Response

        return Response.objects.filter(session=self.session).select_related("question").order_by("submitted_at", "id")

    def answers(self, key: str) -> list:
        """Values given so far to question ``key`` (or jsPsych item), oldest first."""
        return [r.value for r in self.responses.filter(item=key)]

    def last_answer(self, key: str, default=None):
        values = self.answers(key)
        return values[-1] if values else default

    def set_subject_field(self, name: str, value) -> None:
        """Store a personal subject field under the experiment's data policy.

        Raises ``runner.policy.PolicyViolation`` naming the field when the policy forbids it.
        """
        apply_subject_fields(session=self.session, fields={name: value}, explicit=True)


def _group_for(session) -> Any:
    """The groups app's view of this session's group (``groups.selectors.run_group``)."""
    if not session.experiment.is_group:
        return None
    from groups.selectors import run_group

    return run_group(session=session)


def make_run(*, session, position, visit: int) -> RunContext:
    experiment = session.experiment
    return RunContext(
        session=session,
        experiment=experiment,
        form=position.form,
        position=position,
        visit=visit,
        params=dict(experiment.params or {}),
    )


def _kwargs_for(func, params: dict) -> dict:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in sig.parameters and k != "run"}


def call_callback(dotted: str, run: RunContext):
    """Resolve and call ``dotted`` with ``run``; any failure becomes :class:`CallbackFailed`.

    The traceback is logged on logger ``runner.callbacks`` with the experiment slug,
    form order, visit and session id only (no personal data, no arguments).
    """
    try:
        func = resolve_callable(dotted)
        return func(run, **_kwargs_for(func, run.params))
    except (Exception, SystemExit) as exc:  # sys.exit() in experiment code must not stop the server
        logger.exception(
            "callback %s failed (experiment=%s form_order=%s visit=%s session=%s)",
            dotted,
            run.experiment.slug,
            run.position.order,
            run.visit,
            run.session.pk,
        )
        raise CallbackFailed(dotted, form_order=run.position.order) from exc
