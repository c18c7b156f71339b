"""CSV writers: long (one row per answer or jsPsych trial), wide (one row per session),
the group step log, and the data dictionary written beside every CSV.

Both data writers make two passes: the first collects the columns that come from the data
(flattened JSON, indexed repeated measures), the second streams rows. Neither holds more
than one session's responses in memory.
"""

from __future__ import annotations

from typing import Any

from . import columns as registry
from .columns import RESPONSE, SESSION, Entry
from .context import ExportContext
from .records import (
    cell,
    family_keys,
    flatten,
    flow_step_record,
    response_record,
    session_record,
    utc_iso,
    wide_cells,
)
from .selectors import group_sessions_for_export, iter_response_json, iter_step_log

DF_TYPES = {"enum": "string", "int": "integer", "float": "number", "string": "string", "text": "string"}


def write_dictionary(ctx: ExportContext, name: str, entries: list[Entry]) -> None:
    with ctx.archive.csv(name, registry.DICTIONARY_HEADER) as (writer, info):
        for entry in entries:
            writer.writerow(entry.as_row())
            info.rows += 1


def _plain_names(ctx: ExportContext, level: str) -> list[str]:
    return [c.name for c in ctx.selected(level) if not c.is_family]


def long_columns(ctx: ExportContext) -> list[str]:
    """Header of the long file: first pass over the responses for flattened JSON keys."""
    families = [c for c in ctx.selected(RESPONSE) if c.is_family]
    found: set[str] = set()
    if families:
        for value, jspsych, shared, *_ in iter_response_json(experiment=ctx.experiment, filters=ctx.filters):
            found.update(family_keys(value, jspsych, shared))
            ctx.tick()
    names = _plain_names(ctx, SESSION)
    for col in ctx.selected(RESPONSE):
        if col.is_family:
            names += sorted(k for k in found if k.startswith(col.prefix))
        else:
            names.append(col.name)
    return names


def write_long(ctx: ExportContext, data_name: str, dictionary_name: str) -> int:
    """Write the long CSV and its dictionary; returns the number of data rows."""
    header = long_columns(ctx)
    slug = ctx.experiment.slug
    with ctx.archive.csv(data_name, header) as (writer, info):
        for session_row, responses in ctx.merged():
            srec = session_record(session_row, experiment_slug=slug, pseudonyms=ctx.pseudonyms)
            ctx.tick()
            for row in responses:
                record = srec | response_record(row, lookups=ctx.lookups)
                writer.writerow([cell(record.get(name)) for name in header])
                info.rows += 1
                ctx.tick()
    write_dictionary(ctx, dictionary_name, [registry.describe(n) for n in header])
    return info.rows


def _wide_entry(name: str, question, form_name: str | None, form_order: int, visit: int) -> Entry:
    where = f"form {form_name or form_order} (position {form_order}), visit {visit}"
    stem = name.rsplit("__", 1)[0]
    if stem.startswith("jspsych."):
        _, trial, key = stem.split(".", 2)
        base = registry.describe(f"jspsych.{key}")
        which = f"Trial {trial[1:]}" if trial[:1] == "t" and trial[1:].isdigit() else f"Item {trial}"
        return Entry(name, f"{base.description} {which}, {where}.", base.type, base.units)
    if question is None:
        return Entry(name, f"Answer to item '{stem}', {where}.", "json")
    fmt = question.data_format
    part = f" (part '{stem.split('.', 1)[1]}')" if "." in stem else ""
    levels = tuple(str(c) for c in fmt.choices) if fmt.choices else ()
    units = ""
    if fmt.range:
        units = f"range {fmt.range.get('min')}..{fmt.range.get('max')}"
    type_ = DF_TYPES.get(fmt.df_type, "json") if not part else "json"
    return Entry(name, f"Answer to '{question.text}'{part}, {where}.", type_, units, levels)


def wide_columns(ctx: ExportContext) -> tuple[list[str], dict[str, Entry]]:
    """Header of the wide file and the dictionary entries of its indexed columns."""
    want = {"value": ctx.wants("value"), "parts": ctx.wants("value.*"), "jspsych": ctx.wants("jspsych.*")}
    keys: dict[str, tuple] = {}
    entries: dict[str, Entry] = {}
    if any(want.values()):
        forms, questions = ctx.lookups["forms"], ctx.lookups["questions"]
        for value, jspsych, _shared, item, form_order, visit, trial_index, qid, form_id in iter_response_json(
            experiment=ctx.experiment, filters=ctx.filters
        ):
            ctx.tick()
            cells = wide_cells(
                value,
                jspsych,
                item=item,
                form_order=form_order,
                visit=visit,
                trial_index=trial_index,
                want_value=want["value"],
                want_parts=want["parts"],
                want_jspsych=want["jspsych"],
            )
            for name in cells:
                if name not in keys:
                    keys[name] = (form_order, visit, -1 if trial_index is None else trial_index, name)
                    entries[name] = _wide_entry(name, questions.get(qid), forms.get(form_id), form_order, visit)
    indexed = sorted(keys, key=lambda n: keys[n])
    return _plain_names(ctx, SESSION) + indexed, entries


def write_wide(ctx: ExportContext, data_name: str, dictionary_name: str) -> int:
    """Write the wide CSV (one row per covered session, repeated measures indexed, never averaged)."""
    header, entries = wide_columns(ctx)
    want = {
        "want_value": ctx.wants("value"),
        "want_parts": ctx.wants("value.*"),
        "want_jspsych": ctx.wants("jspsych.*"),
    }
    slug = ctx.experiment.slug
    with ctx.archive.csv(data_name, header) as (writer, info):
        for session_row, responses in ctx.merged():
            record: dict[str, Any] = session_record(session_row, experiment_slug=slug, pseudonyms=ctx.pseudonyms)
            for row in responses:
                record.update(
                    wide_cells(
                        row["value"],
                        row["jspsych_data"],
                        item=row["item"],
                        form_order=row["form_order"],
                        visit=row["visit"],
                        trial_index=row["trial_index"],
                        **want,
                    )
                )
            writer.writerow([cell(record.get(name)) for name in header])
            info.rows += 1
            ctx.tick(1 + len(responses))
    write_dictionary(ctx, dictionary_name, [entries.get(n) or registry.describe(n) for n in header])
    return info.rows


def write_steps(ctx: ExportContext, data_name: str, dictionary_name: str) -> int | None:
    """The step log of covered group sessions, with shared parameters; None when there are none."""
    ids = list(group_sessions_for_export(experiment=ctx.experiment, filters=ctx.filters).values_list("id", flat=True))
    if not ids:
        return None
    shared: set[str] = set()
    flow = False
    for entry in iter_step_log(group_session_ids=ids):
        shared.update(flatten("shared", entry.shared_params or {}))
        flow = flow or entry.action in registry.FLOW_ACTIONS
    header = [c.name for c in registry.STEP_COLUMNS if not c.is_family] + sorted(shared)
    header += [c.name for c in registry.FLOW_STEP_COLUMNS] if flow else []
    with ctx.archive.csv(data_name, header) as (writer, info):
        for entry in iter_step_log(group_session_ids=ids):
            record = {
                "group_session": entry.group_session_id,
                "step": entry.step,
                "action": entry.action,
                "at": utc_iso(entry.at),
                "at_ms": entry.at_ms,
            }
            flatten("shared", entry.shared_params or {}, record)
            if flow:
                record.update(flow_step_record(entry))
            writer.writerow([cell(record.get(n)) for n in header])
            info.rows += 1
    write_dictionary(ctx, dictionary_name, [registry.describe_step(n) for n in header])
    return info.rows
