"""Every exported column has a dictionary description; Psych-DS lists every column."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from exports import columns as registry

FORMATS = ["csv-long", "csv-wide", "psychds"]


def test_registry_entries_are_complete():
    for col in (*registry.COLUMNS, *registry.STEP_COLUMNS):
        assert col.description.strip(), col.name
        assert col.type in {"integer", "number", "string", "boolean", "datetime", "json"}, col.name
    for col in registry.COLUMNS:
        if col.identifying:
            assert not col.default_on, f"identifying column {col.name} must be off by default"
    assert len({c.name for c in registry.COLUMNS}) == len(registry.COLUMNS)


def test_unknown_columns_are_refused():
    with pytest.raises(registry.ColumnError, match="nope"):
        registry.resolve(["participant", "nope"])
    with pytest.raises(registry.ColumnError, match="not identifying"):
        registry.resolve(None, add_identifying=["participant"])
    with pytest.raises(registry.ColumnError):
        registry.describe("mystery")


def csvs(files: dict[str, bytes]) -> dict[str, list[dict[str, str]]]:
    return {n: list(csv.DictReader(io.StringIO(d.decode()))) for n, d in files.items() if n.endswith(".csv")}


def dictionary_for(name: str) -> str:
    if name.endswith("_data.csv"):  # Psych-DS: dictionaries live in documentation/
        root, _, rest = name.partition("/data/")
        return f"{root}/documentation/{rest[:-4]}_dictionary.csv"
    stem, _, ext = name.rpartition(".")
    if stem.endswith("_identifiable"):
        return stem[: -len("_identifiable")] + "_dictionary_identifiable." + ext
    return f"{stem}_dictionary.{ext}"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("ident", [[], ["email", "subject_id"]])
def test_every_csv_column_has_a_description(solo, group, export, fmt, ident):
    cols = [c.name for c in registry.COLUMNS if not c.identifying]
    for experiment in (solo, group):
        _, files = export(experiment, fmt, columns=cols, identifying=ident, filters={"include_preview": True})
        tables = csvs(files)
        data_files = [n for n in tables if "dictionary" not in n]
        assert data_files
        for name in data_files:
            dictionary = tables.get(dictionary_for(name))
            assert dictionary is not None, f"no dictionary beside {name}"
            header = next(csv.reader(io.StringIO(files[name].decode())))
            described = {row["column"]: row for row in dictionary}
            assert list(described) == header, f"dictionary of {name} does not follow its columns"
            for column in header:
                row = described[column]
                assert row["description"].strip(), f"{name}: column {column} has no description"
                assert row["type"], column
                assert row["identifying"] == ("true" if column in ident else "false")


def test_dictionary_header():
    assert registry.DICTIONARY_HEADER == ["column", "description", "type", "units", "levels", "identifying"]


def test_psychds_variable_measured_lists_every_column(solo, group, export):
    for experiment in (solo, group):
        _, files = export(experiment, "psychds")
        root = f"{next(iter(files)).split('/')[0]}/"
        description = json.loads(files[root + "dataset_description.json"])
        assert description["@type"] == "Dataset" and description["name"]
        measured = {v["name"] for v in description["variableMeasured"]}
        for name, data in files.items():
            if name.endswith(".csv") and name.startswith(f"{root}data/"):
                label = experiment.slug.replace("-", "")
                assert re.fullmatch(r"([a-z]+-[a-zA-Z0-9]+)(_[a-z]+-[a-zA-Z0-9]+)*_data\.csv", name.split("/")[-1])
                assert name.startswith(f"{root}data/study-{label}")
                header = next(csv.reader(io.StringIO(data.decode())))
                assert set(header) <= measured, set(header) - measured
        assert any(n.startswith(root + "materials/experiment.") for n in files)


def test_wide_dictionary_uses_question_formats(solo, export):
    _, files = export(solo, "csv-wide")
    rows = {r["column"]: r for r in csv.DictReader(io.StringIO(files["golden-solo_wide_dictionary.csv"].decode()))}
    assert rows["agree__f1_v1"]["levels"] == "Agree|Disagree"
    assert rows["rating__f2_v2"]["type"] == "integer" and "1..7" in rows["rating__f2_v2"]["units"]
    assert rows["jspsych.t0.rt__f3_v1"]["units"] == "ms"
