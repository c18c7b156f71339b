"""Turning a processed visit into Response rows (one per question, named item and
jsPsych trial), after the data policy. Pure construction: the caller saves."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime

from runner import policy
from runner.models import Response


def sanitize_trials(experiment, trials: list[dict]) -> list[dict]:
    """jsPsych trials through ``runner.policy.sanitize_jspsych``.

    Raises ``runner.policy.PolicyViolation`` (e.g. a trial that is not an object)."""
    if not trials:
        return []
    return policy.sanitize_jspsych(experiment, trials)


def _trial_index(trial: dict, fallback: int) -> int:
    value = trial.get("trial_index", fallback)
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def build_rows(*, page, outcome, trials: list[dict], now, client_time_ms: int | None) -> list[Response]:
    """Unsaved Response rows for one visit; ``item`` is the question key, a named item,
    or ``jspsych:<trial_index>`` (value = the trial's ``response``, if any)."""
    session, position, current = page.session, page.position, page.current
    common = {
        "session": session,
        "subject_id": session.subject_id,  # the id only: loading the subject decrypts its fields
        "experiment": session.experiment,
        "form": position.form,
        "form_order": position.order,
        "visit": current["visit"],
        "stimulus_id": current.get("stimulus_id"),
        "served_at": parse_datetime(current.get("served_at") or ""),
        "submitted_at": now,
        "client_time_ms": client_time_ms,
        **(getattr(outcome, "row_fields", None) or {}),
    }
    rows = [
        Response(item=fxq.question.key, question=fxq.question, value=outcome.answers.get(fxq.question.key), **common)
        for fxq in page.form_questions
    ]
    rows += [Response(item=item, value=value, **common) for item, value in outcome.items.items()]
    for position_in_list, trial in enumerate(trials):
        index = _trial_index(trial, position_in_list)
        rows.append(
            Response(
                item=f"jspsych:{index}", trial_index=index, jspsych_data=trial, value=trial.get("response"), **common
            )
        )
    return rows
