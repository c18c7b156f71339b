"""The four export formats (SPEC section 6), each writing into an open :class:`Archive`.

- ``json``: one JSON file per kind + ``manifest.json``.
- ``csv-long`` / ``csv-wide``: the data CSV, the group step log when there is one, a data
  dictionary beside each CSV, + ``manifest.json``.
- ``psychds``: a Psych-DS folder (``dataset_description.json`` with every column in
  ``variableMeasured``, ``data/study-<slug>_data.csv``, dictionaries, ``materials/``).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from .columns import SESSION
from .context import ExportContext, experiment_definition
from .records import canonical, session_record, utc_iso
from .selectors import group_sessions_for_export, memberships, stimuli_for_export
from .writers import write_long, write_steps, write_wide

SOFTWARE = "Ensemble Live"


def write_json(ctx: ExportContext) -> None:
    definition, _yaml = experiment_definition(ctx.experiment)
    ctx.archive.json("experiment.json", definition)
    participants = _write_sessions_and_responses(ctx)
    ctx.archive.json(ctx.name("participants", "json"), participants, rows=len(participants))
    groups = _group_sessions(ctx)
    ctx.archive.json("group_sessions.json", groups, rows=len(groups))
    stimuli = _stimuli(ctx)
    ctx.archive.json("stimuli.json", stimuli, rows=len(stimuli))


SUBJECT_LEVEL = ("subject_id", "name_first", "name_last", "email", "dob", "phone", "address", "prolific_pid")


def _write_sessions_and_responses(ctx: ExportContext) -> list[dict[str, Any]]:
    """sessions.json, then responses.json (a zip takes one entry at a time); returns the participants."""
    session_cols = [c.name for c in ctx.selected(SESSION) if c.name not in SUBJECT_LEVEL]
    subject_cols = [n for n in SUBJECT_LEVEL if ctx.wants(n)]
    participants: dict[str, dict[str, Any]] = {}
    with ctx.archive.json_array(ctx.name("sessions", "json")) as add_session:
        for session_row in ctx.session_rows():
            srec = session_record(session_row, experiment_slug=ctx.experiment.slug, pseudonyms=ctx.pseudonyms)
            add_session({n: srec[n] for n in session_cols})
            entry = participants.setdefault(
                srec["participant"],
                {
                    "participant": srec["participant"],
                    "sessions": [],
                    "excluded": bool(session_row.get("subject__excluded")),
                    "exclusion_reason": session_row.get("subject__exclusion_reason") or "",
                }
                | {n: srec[n] for n in subject_cols},
            )
            entry["sessions"].append(srec["session"])
            ctx.tick()
    with ctx.archive.json_array(ctx.name("responses", "json")) as add_response:
        for session_row, responses in ctx.merged():
            participant = ctx.pseudonyms.get(session_row["subject_id"], session_row["id"])
            for row in responses:
                add_response(_response_object(ctx, row, participant))
            ctx.tick(len(responses))
    return sorted(participants.values(), key=lambda p: p["participant"])


def _response_object(ctx: ExportContext, row: dict[str, Any], participant: str) -> dict[str, Any]:
    lookups = ctx.lookups
    question = lookups["questions"].get(row["question_id"])
    obj: dict[str, Any] = {"session": row["session_id"]}
    if ctx.wants("participant"):
        obj["participant"] = participant
    plain = {
        "form_order": row["form_order"],
        "form": lookups["forms"].get(row["form_id"]),
        "visit": row["visit"],
        "item": row["item"],
        "question": question.key if question else None,
        "trial_index": row["trial_index"],
        "stimulus": lookups["stimuli"].get(row["stimulus_id"]),
        "served_at": utc_iso(row["served_at"]),
        "submitted_at": utc_iso(row["submitted_at"]),
        "client_time_ms": row["client_time_ms"],
        "step": row["step"],
        "onset_ms": row.get("onset_ms"),
        "onset_late_ms": row.get("onset_late_ms"),
    }
    obj |= {k: v for k, v in plain.items() if ctx.wants(k)}
    obj["group_session"] = row["group_session_id"]
    if ctx.wants("value") or ctx.wants("value.*"):
        obj["value"] = canonical(row["value"])
    if ctx.wants("shared.*"):
        obj["shared_params"] = canonical(row["shared_params"])
    if ctx.wants("jspsych.*"):
        obj["jspsych_data"] = canonical(
            row["jspsych_data"]
        )  # untouched, as the browser sent it (after the data policy)
    return obj


def _group_sessions(ctx: ExportContext) -> list[dict[str, Any]]:
    out = []
    for gs in group_sessions_for_export(experiment=ctx.experiment, filters=ctx.filters):
        members = [
            {
                "participant": ctx.pseudonyms.get(m["session__subject_id"], m["session_id"]),
                "session": m["session_id"],
                "status": m["status"],
            }
            for m in memberships(group_session=gs, filters=ctx.filters, experiment=ctx.experiment)
        ]
        steps = [
            {
                "step": s.step,
                "action": s.action,
                "at": utc_iso(s.at),
                "at_ms": s.at_ms,
                "shared_params": canonical(s.shared_params),
                "data": canonical(getattr(s, "data", None) or {}),
            }
            for s in gs.step_log.order_by("at_ms", "id")
        ]
        out.append(
            {
                "id": gs.id,
                "group": gs.group.name if gs.group else None,
                "phase": gs.phase,
                "step": gs.step,
                "expected_size": gs.expected_size,
                "created": utc_iso(gs.created),
                "started": utc_iso(gs.started),
                "ended": utc_iso(gs.ended),
                "context": canonical(gs.context),
                "shared_params": canonical(gs.shared_params),
                "members": members,
                "step_log": steps,
                "onsets": _onsets(gs, ctx),
            }
        )
    return out


def _onsets(gs, ctx: ExportContext) -> list[dict[str, Any]]:
    """The live page's onsets of each step (reported over the socket, the first per
    participant and step), participants as pseudonyms."""
    members = {m.pseudonym: m.session for m in gs.memberships.select_related("session")}
    return [
        {
            "participant": ctx.pseudonyms.get(members[o.pseudonym].subject_id, members[o.pseudonym].pk)
            if o.pseudonym in members
            else None,
            "step": o.step,
            "starts_at_ms": o.starts_at,
            "onset_ms": o.onset_ms,
            "late_ms": o.late_ms,
            "ready_ms": o.ready_ms,
        }
        for o in gs.onsets.order_by("step", "onset_ms", "id")
    ]


def _stimuli(ctx: ExportContext) -> list[dict[str, Any]]:
    out = []
    for stim in stimuli_for_export(experiment=ctx.experiment, filters=ctx.filters):
        attributes = {}
        for sxa in stim.stimulus_attributes.all():
            attributes[sxa.attribute.name] = sxa.value_double if sxa.value_double is not None else sxa.value_text
        out.append(
            {
                "id": stim.id,
                "name": stim.name,
                "description": stim.description,
                "file": stim.location.name or None,
                "file_format": stim.file_format,
                "duration": stim.duration,
                "attributes": attributes,
            }
        )
    return out


def write_csv_long(ctx: ExportContext) -> None:
    slug = ctx.experiment.slug
    write_long(ctx, ctx.name(f"{slug}_long", "csv"), ctx.name(f"{slug}_long_dictionary", "csv"))
    write_steps(ctx, f"{slug}_steps.csv", f"{slug}_steps_dictionary.csv")


def write_csv_wide(ctx: ExportContext) -> None:
    slug = ctx.experiment.slug
    write_wide(ctx, ctx.name(f"{slug}_wide", "csv"), ctx.name(f"{slug}_wide_dictionary", "csv"))
    write_steps(ctx, f"{slug}_steps.csv", f"{slug}_steps_dictionary.csv")


def psychds_label(slug: str) -> str:
    """A Psych-DS keyword value: letters and digits only (``golden-solo`` -> ``goldensolo``)."""
    return re.sub(r"[^A-Za-z0-9]", "", slug) or "experiment"


def write_psychds(ctx: ExportContext) -> None:
    """Psych-DS: data files under data/ named ``study-<label>[_description-...]_data.csv``.

    The validator reads every CSV under data/ as a data file, so each file's dictionary goes
    to ``documentation/<data file stem>_dictionary.csv`` instead of beside it.
    """
    study = f"study-{psychds_label(ctx.experiment.slug)}"
    ident = "_description-identifiable" if ctx.identifiable else ""
    write_long(ctx, f"data/{study}{ident}_data.csv", f"documentation/{study}{ident}_data_dictionary.csv")
    write_steps(
        ctx, f"data/{study}_description-steps_data.csv", f"documentation/{study}_description-steps_data_dictionary.csv"
    )
    definition, yaml_text = experiment_definition(ctx.experiment)
    if yaml_text is not None:
        ctx.archive.text_file("materials/experiment.yaml", yaml_text)
    else:
        ctx.archive.json("materials/experiment.json", definition)
    ctx.archive.json("dataset_description.json", _dataset_description(ctx))


def _dictionary_rows(ctx: ExportContext) -> list[dict[str, str]]:
    """Every row of every dictionary written so far (read back from the entries' names)."""
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for info in ctx.archive.files:
        if not info.name.endswith("_dictionary.csv"):
            continue
        text = ctx.archive.zip.read(ctx.archive.prefix + info.name).decode("utf-8")
        for row in csv.DictReader(io.StringIO(text)):
            if row["column"] not in seen:
                seen.add(row["column"])
                rows.append(row)
    return rows


def _dataset_description(ctx: ExportContext) -> dict[str, Any]:
    variables = []
    for row in _dictionary_rows(ctx):
        prop: dict[str, Any] = {"@type": "PropertyValue", "name": row["column"], "description": row["description"]}
        if row["units"]:
            prop["unitText"] = row["units"]
        if row["levels"]:
            prop["value"] = row["levels"].split("|")
        variables.append(prop)
    exp = ctx.experiment
    return {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": exp.title,
        "description": exp.description or f"Data of the experiment {exp.title} ({exp.slug}), exported by {SOFTWARE}.",
        "dateCreated": utc_iso(ctx.now),
        "variableMeasured": variables,
    }


def manifest(ctx: ExportContext, fmt: str) -> dict[str, Any]:
    """The manifest: filters, columns, row counts, SHA-256 per file, UTC time."""
    return {
        "format": fmt,
        "experiment": ctx.experiment.slug,
        "title": ctx.experiment.title,
        "created": utc_iso(ctx.now),
        "software": SOFTWARE,
        "filters": ctx.filters.as_dict(),
        "columns": ctx.columns,
        "identifying_columns": ctx.identifying,
        "pseudonym_scope": ctx.pseudonyms.scope,
        "participants": len(ctx.pseudonyms),
        "files": [{"name": f.name, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in ctx.archive.files],
    }


WRITERS = {"json": write_json, "csv-long": write_csv_long, "csv-wide": write_csv_wide, "psychds": write_psychds}
PASSES = {"json": 1, "csv-long": 2, "csv-wide": 2, "psychds": 2}
