"""What every format writer gets: the experiment, the choices made, and helpers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runner.definitions.dumper import dump_experiment, experiment_to_definition
from runner.definitions.schema import definition_to_dict
from runner.models import Experiment

from . import columns as registry
from .archive import Archive
from .pseudonyms import PseudonymMap
from .selectors import ExportFilters, iter_response_rows, iter_session_rows, lookups

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class ExportContext:
    experiment: Experiment
    filters: ExportFilters
    columns: list[str]
    archive: Archive
    pseudonyms: PseudonymMap
    now: datetime
    total: int = 0
    progress: Progress | None = None
    done: int = 0
    _last_report: float = 0.0
    _lookups: dict | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def identifying(self) -> list[str]:
        return registry.identifying_in(self.columns)

    @property
    def identifiable(self) -> bool:
        return bool(self.identifying)

    @property
    def lookups(self) -> dict:
        if self._lookups is None:
            self._lookups = lookups(experiment=self.experiment)
        return self._lookups

    def wants(self, name: str) -> bool:
        return name in self.columns

    def selected(self, level: str) -> list[registry.Column]:
        return [registry.BY_NAME[n] for n in self.columns if registry.BY_NAME[n].level == level]

    def tick(self, n: int = 1) -> None:
        """Count work done; reports progress at most every 0.5 s."""
        self.done += n
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_report >= 0.5:
            self._last_report = now
            self.progress(min(self.done, self.total), self.total)

    def session_rows(self) -> Iterator[dict[str, Any]]:
        needs_subject = any(n in self.columns for n in registry.identifying_names())
        return iter_session_rows(experiment=self.experiment, filters=self.filters, with_subject=needs_subject)

    def response_rows(self) -> Iterator[dict[str, Any]]:
        return iter_response_rows(experiment=self.experiment, filters=self.filters)

    def merged(self) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """(session row, its response rows) for every covered session, by id, streaming both queries.

        Only one session's responses are held at a time.
        """
        responses = self.response_rows()
        sessions = self.session_rows()
        try:
            pending = next(responses, None)
            for session in sessions:
                batch: list[dict[str, Any]] = []
                while pending is not None and pending["session_id"] < session["id"]:
                    pending = next(responses, None)  # cannot happen: responses come from covered sessions
                while pending is not None and pending["session_id"] == session["id"]:
                    batch.append(pending)
                    pending = next(responses, None)
                yield session, batch
        finally:
            responses.close()
            sessions.close()

    def name(self, stem: str, ext: str) -> str:
        """An entry name; identifiable exports say so in every data file name."""
        return f"{stem}_identifiable.{ext}" if self.identifiable else f"{stem}.{ext}"


def experiment_definition(experiment: Experiment) -> tuple[dict[str, Any], str | None]:
    """(definition as a dict, definition YAML or None) from ``runner.definitions``, or a plain
    dump of the experiment's forms and questions when the dumper fails."""
    try:
        return definition_to_dict(experiment_to_definition(experiment)), dump_experiment(experiment)
    except Exception:  # noqa: BLE001 - a dumper bug must not block a data export
        log.exception("runner.definitions could not dump %s; using the plain dump", experiment.slug)
    return fallback_definition(experiment), None


def fallback_definition(experiment: Experiment) -> dict[str, Any]:
    forms = []
    for exf in experiment.experiment_forms.select_related("form").order_by("order"):
        questions = [
            {
                "key": fxq.question.key,
                "text": fxq.question.text,
                "type": fxq.question.widget,
                "choices": fxq.question.data_format.choices,
                "range": fxq.question.data_format.range,
                "required": fxq.required,
            }
            for fxq in exf.form.form_questions.select_related("question__data_format").order_by("order")
        ]
        forms.append(
            {
                "order": exf.order,
                "name": exf.form.name,
                "handler": exf.handler,
                "condition_script": exf.condition_script or None,
                "stimulus_script": exf.stimulus_script or None,
                "repeat": exf.repeat,
                "goto": exf.goto,
                "break_loop_button": exf.break_loop_button,
                "questions": questions,
            }
        )
    return {
        "slug": experiment.slug,
        "title": experiment.title,
        "description": experiment.description,
        "is_group": experiment.is_group,
        "group_size": experiment.group_size,
        "params": experiment.params,
        "group_flow": experiment.group_flow or None,
        "data_policy": experiment.data_policy,
        "forms": forms,
    }
