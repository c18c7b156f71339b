"""Reads for exports: which sessions and responses an export covers, streamed.

Everything large is read with ``.iterator(chunk_size=...)`` through ``values()`` (no model
instances), ordered so that writers can merge sessions and responses without holding
either in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import F, Q, QuerySet

from groups.models import GroupSession, Membership, StepLog
from runner.models import Experiment, ExperimentXStimulus, Form, Question, Response, Session, Stimulus

CHUNK = 2000

SESSION_FIELDS = {
    "session": "id",
    "session_start": "start",
    "session_end": "end",
    "age": "age",
    "timezone": "timezone",
    "prolific_study_id": "prolific_study_id",
    "clock_offset_ms": "clock_offset_ms",
    "user_agent": "user_agent",
    "prolific_session_id": "prolific_session_id",
    "sona_code": "sona_code",
}
SUBJECT_FIELDS = ("name_first", "name_last", "email", "dob", "phone", "address", "prolific_pid")
RESPONSE_FIELDS = (
    "session_id",
    "form_id",
    "form_order",
    "visit",
    "item",
    "question_id",
    "value",
    "jspsych_data",
    "trial_index",
    "stimulus_id",
    "served_at",
    "submitted_at",
    "client_time_ms",
    "group_session_id",
    "step",
    "shared_params",
    "onset_ms",
    "onset_late_ms",
)


@dataclass(frozen=True)
class ExportFilters:
    """Which sessions an export covers. Previews, bots and excluded sessions are left out unless asked for."""

    include_preview: bool = False
    include_bots: bool = False
    include_excluded: bool = False
    finished_only: bool = False

    @classmethod
    def from_dict(cls, data: dict | None) -> ExportFilters:
        data = data or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        return cls(**{k: bool(v) for k, v in data.items()})

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


def sessions_for_export(*, experiment: Experiment, filters: ExportFilters) -> QuerySet[Session]:
    """The experiment's sessions an export covers, by id."""
    qs = Session.objects.filter(experiment=experiment)
    if not filters.include_preview:
        qs = qs.filter(is_preview=False)
    if not filters.include_bots:
        qs = qs.filter(is_bot=False)
    if not filters.include_excluded:
        qs = qs.filter(excluded=False).exclude(Q(subject__isnull=False) & Q(subject__excluded=True))
    if filters.finished_only:
        qs = qs.filter(end__isnull=False)
    return qs.order_by("id")


def iter_session_rows(
    *, experiment: Experiment, filters: ExportFilters, with_subject: bool = False
) -> Iterator[dict[str, Any]]:
    """One dict per covered session, by id, with subject and group ids joined in."""
    fields = [
        *SESSION_FIELDS.values(),
        "subject_id",
        "is_preview",
        "excluded",
        "exclusion_reason",
        "subject__excluded",
        "subject__exclusion_reason",
        "group_membership__group_session_id",
    ]
    if with_subject:
        fields += [f"subject__{name}" for name in SUBJECT_FIELDS]
    yield from sessions_for_export(experiment=experiment, filters=filters).values(*fields).iterator(chunk_size=CHUNK)


def responses_for_export(*, experiment: Experiment, filters: ExportFilters) -> QuerySet[Response]:
    sessions = sessions_for_export(experiment=experiment, filters=filters)
    return Response.objects.filter(experiment=experiment, session__in=sessions.values("id"))


def iter_response_rows(*, experiment: Experiment, filters: ExportFilters) -> Iterator[dict[str, Any]]:
    """Every covered response as a dict, ordered by session, form position, visit, id."""
    qs = responses_for_export(experiment=experiment, filters=filters)
    order = ("session_id", "form_order", "visit", F("trial_index").asc(nulls_first=True), "id")
    qs = qs.order_by(*order).values(*RESPONSE_FIELDS)
    yield from qs.iterator(chunk_size=CHUNK)


def iter_response_json(*, experiment: Experiment, filters: ExportFilters) -> Iterator[tuple]:
    """(value, jspsych_data, shared_params, item, form_order, visit, trial_index, question_id, form_id) per
    response, for the first pass that collects column names."""
    qs = responses_for_export(experiment=experiment, filters=filters).order_by()
    fields = (
        "value",
        "jspsych_data",
        "shared_params",
        "item",
        "form_order",
        "visit",
        "trial_index",
        "question_id",
        "form_id",
    )
    yield from qs.values_list(*fields).iterator(chunk_size=CHUNK)


def count_rows(*, experiment: Experiment, filters: ExportFilters) -> tuple[int, int]:
    """(sessions, responses) an export covers; used for progress."""
    return (
        sessions_for_export(experiment=experiment, filters=filters).count(),
        responses_for_export(experiment=experiment, filters=filters).count(),
    )


class _Lookup(dict):
    """An id -> value map preloaded with the experiment's own rows; a miss (a shared form,
    question or stimulus) is fetched once and cached, None when the id does not exist."""

    def __init__(self, preload: dict, fetch):
        super().__init__(preload)
        self._fetch = fetch

    def get(self, key, default=None):
        if key is None:
            return default
        if key not in self:
            self[key] = self._fetch(key)
        return self[key]


def _one(queryset, field: str | None = None):
    row = queryset.first()
    if row is None or field is None:
        return row
    return getattr(row, field)


def lookups(*, experiment: Experiment) -> dict[str, dict]:
    """Id -> name maps used while writing rows (forms, question objects, stimuli)."""
    forms = Form.objects.filter(Q(owner=experiment) | Q(experiments=experiment)).distinct()
    questions = Question.objects.filter(Q(owner=experiment) | Q(forms__experiments=experiment)).distinct()
    attached = ExperimentXStimulus.objects.filter(experiment=experiment).values("stimulus_id")
    stimuli = Stimulus.objects.filter(id__in=attached)
    return {
        "forms": _Lookup(dict(forms.values_list("id", "name")), lambda pk: _one(Form.objects.filter(pk=pk), "name")),
        "questions": _Lookup(
            {q.id: q for q in questions.select_related("data_format")},
            lambda pk: _one(Question.objects.select_related("data_format").filter(pk=pk)),
        ),
        "stimuli": _Lookup(
            dict(stimuli.values_list("id", "name")), lambda pk: _one(Stimulus.objects.filter(pk=pk), "name")
        ),
    }


def group_sessions_for_export(*, experiment: Experiment, filters: ExportFilters) -> QuerySet[GroupSession]:
    """Group sessions in which at least one covered session took part."""
    sessions = sessions_for_export(experiment=experiment, filters=filters)
    ids = Membership.objects.filter(session__in=sessions.values("id")).values("group_session_id")
    return GroupSession.objects.filter(id__in=ids).select_related("group").order_by("id")


def memberships(*, group_session: GroupSession, filters: ExportFilters, experiment: Experiment):
    sessions = sessions_for_export(experiment=experiment, filters=filters)
    return (
        Membership.objects.filter(group_session=group_session, session__in=sessions.values("id"))
        .order_by("session_id")
        .values("session_id", "session__subject_id", "status")
    )


def iter_step_log(*, group_session_ids: list[int]) -> Iterator[StepLog]:
    """Step log entries of the given group sessions, in order."""
    qs = StepLog.objects.filter(group_session_id__in=group_session_ids).order_by("group_session_id", "at_ms", "id")
    yield from qs.iterator(chunk_size=CHUNK)


def stimuli_for_export(*, experiment: Experiment, filters: ExportFilters) -> QuerySet[Stimulus]:
    """Stimuli attached to the experiment or shown in a covered response."""
    attached = ExperimentXStimulus.objects.filter(experiment=experiment).values("stimulus_id")
    shown = responses_for_export(experiment=experiment, filters=filters).exclude(stimulus=None).values("stimulus_id")
    return (
        Stimulus.objects.filter(Q(id__in=attached) | Q(id__in=shown))
        .prefetch_related("stimulus_attributes__attribute")
        .order_by("name", "id")
    )
