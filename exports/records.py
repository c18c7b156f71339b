"""Turning database rows into export records: column values, flattening, cell text.

A *record* maps column names to JSON-native Python values; CSV writers turn values into
cells with :func:`cell`. Datetimes are UTC ISO 8601 with milliseconds and a ``Z``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from .pseudonyms import PseudonymMap


def utc_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def canonical(value: Any) -> Any:
    """Objects with their keys sorted, recursively: PostgreSQL's jsonb does not keep key order, so
    exports sort keys to read the same on every database."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Canonical compact JSON (sorted keys) used for JSON text inside cells."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


#: First characters that make a spreadsheet (Excel, LibreOffice, Sheets) read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def guard_formula(text: str) -> str:
    """Neutralise CSV formula injection: text a participant typed (``=HYPERLINK(...)``,
    ``@SUM(...)``) gets a leading apostrophe so a spreadsheet shows it instead of running
    it. Numbers (``-3``, ``+1.5e3``) are left alone. docs/data.md, docs/security.md."""
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def cell(value: Any) -> str:
    """The CSV text of a value: empty for null, true/false, JSON for lists and objects;
    text that a spreadsheet would run as a formula is neutralised (:func:`guard_formula`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return dumps(value)
    return guard_formula(str(value))


def flatten(prefix: str, value: Any, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested objects flattened to dotted names under ``prefix`` (lists stay whole, as JSON)."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, sub in value.items():
            flatten(f"{prefix}.{key}", sub, out)
    else:
        out[prefix] = value
    return out


def family_keys(value: Any, jspsych: Any, shared: Any) -> Iterable[str]:
    """Concrete family column names a response contributes (``value.*``, ``jspsych.*``, ``shared.*``)."""
    if isinstance(value, dict):
        yield from flatten("value", value)
    if isinstance(jspsych, dict):
        yield from flatten("jspsych", jspsych)
    if isinstance(shared, dict):
        yield from flatten("shared", shared)


def session_record(row: dict[str, Any], *, experiment_slug: str, pseudonyms: PseudonymMap) -> dict[str, Any]:
    """Every session-level column's value for one session row (see ``selectors.iter_session_rows``)."""
    subject_excluded = bool(row.get("subject__excluded"))
    reasons = [r for r in (row["exclusion_reason"], row.get("subject__exclusion_reason") or "") if r]
    record = {
        "participant": pseudonyms.get(row["subject_id"], row["id"]),
        "session": row["id"],
        "experiment": experiment_slug,
        "session_start": utc_iso(row["start"]),
        "session_end": utc_iso(row["end"]),
        "finished": row["end"] is not None,
        "preview": row["is_preview"],
        "excluded": row["excluded"] or subject_excluded,
        "exclusion_reason": "; ".join(reasons),
        "age": row["age"],
        "timezone": row["timezone"],
        "group_session": row["group_membership__group_session_id"],
        "prolific_study_id": row["prolific_study_id"],
        "clock_offset_ms": row["clock_offset_ms"],
        "user_agent": row["user_agent"],
        "subject_id": str(row["subject_id"]) if row["subject_id"] else None,
        "prolific_session_id": row["prolific_session_id"],
        "sona_code": row["sona_code"],
    }
    for name in ("name_first", "name_last", "email", "dob", "phone", "address", "prolific_pid"):
        record[name] = to_jsonable(row.get(f"subject__{name}"))
    return record


def response_record(row: dict[str, Any], *, lookups: dict[str, dict]) -> dict[str, Any]:
    """Every response-level column's value for one response row, families flattened."""
    question = lookups["questions"].get(row["question_id"])
    value = row["value"]
    record = {
        "form_order": row["form_order"],
        "form": lookups["forms"].get(row["form_id"]),
        "visit": row["visit"],
        "item": row["item"],
        "question": question.key if question else None,
        "value": None if isinstance(value, dict) else value,
        "trial_index": row["trial_index"],
        "stimulus": lookups["stimuli"].get(row["stimulus_id"]),
        "served_at": utc_iso(row["served_at"]),
        "submitted_at": utc_iso(row["submitted_at"]),
        "client_time_ms": row["client_time_ms"],
        "step": row["step"],
        "onset_ms": row.get("onset_ms"),
        "onset_late_ms": row.get("onset_late_ms"),
    }
    if isinstance(value, dict):
        flatten("value", value, record)
    if isinstance(row["jspsych_data"], dict):
        flatten("jspsych", row["jspsych_data"], record)
    if isinstance(row["shared_params"], dict):
        flatten("shared", row["shared_params"], record)
    return record


def wide_base(item: str, trial_index: int | None) -> str:
    """The stem of a wide column for jsPsych data: ``jspsych.t<trial index>``, or
    ``jspsych.<item>`` for data without a trial index."""
    if trial_index is None and item.startswith("jspsych:") and item[8:].isdigit():
        trial_index = int(item[8:])
    if trial_index is not None:
        return f"jspsych.t{trial_index}"
    return "jspsych." + item.replace(":", "_").replace(".", "_")


def wide_cells(
    row_value: Any,
    jspsych: Any,
    *,
    item: str,
    form_order: int,
    visit: int,
    trial_index: int | None,
    want_value: bool,
    want_parts: bool,
    want_jspsych: bool,
) -> dict[str, Any]:
    """Wide-format cells of one response: ``<item>__f<order>_v<visit>`` and friends."""
    suffix = f"__f{form_order}_v{visit}"
    cells: dict[str, Any] = {}
    if row_value is not None:
        if isinstance(row_value, dict):
            if want_parts:
                for name, v in flatten(item, row_value).items():
                    cells[name + suffix] = v
        elif want_value:
            cells[item + suffix] = row_value
    if want_jspsych and isinstance(jspsych, dict):
        for name, v in flatten(wide_base(item, trial_index), jspsych).items():
            cells[name + suffix] = v
    return cells


def flow_step_record(entry) -> dict[str, Any]:
    """The flow-control columns of one step-log entry (``columns.FLOW_STEP_COLUMNS``)."""
    data = entry.data or {}
    by = "auto" if data.get("by") == "auto" else ("experimenter" if entry.by_id else "")
    return {
        "participant": data.get("participant"),
        "by": by,
        "timed_out": entry.action == "timed_out",
        "skipped": entry.action in ("skipped", "moved_on"),
        "dropped_at": utc_iso(entry.at) if entry.action == "dropped_out" else None,
        "played_by_bot": entry.action == "bot_took_over" or bool(data.get("bot")),
    }
