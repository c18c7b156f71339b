"""Golden files: every format, on the fixed solo and group data sets, byte for byte.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 .venv/bin/python -m pytest
tests/exports/test_golden.py`` and review the diff of ``tests/exports/golden/``.

The experiment definition files come from ``runner.definitions`` (another module's output
format), so their content is checked for the slug only and their hashes are masked in
the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
FORMATS = ["json", "csv-long", "csv-wide", "psychds"]
DEFINITION_FILES = ("experiment.json", "materials/experiment.yaml", "materials/experiment.json")


def _is_definition(name: str) -> bool:
    return any(name.endswith(d) for d in DEFINITION_FILES)


def normalise(files: dict[str, bytes], slug: str) -> dict[str, bytes]:
    out = {}
    for name, data in files.items():
        if _is_definition(name):
            assert slug.encode() in data, f"{name} does not name the experiment"
            out[name] = b"<experiment definition from runner.definitions>\n"
        elif name.endswith("manifest.json"):
            manifest = json.loads(data)
            for entry in manifest["files"]:
                if _is_definition(entry["name"]):
                    entry["sha256"] = entry["bytes"] = "<definition>"
            out[name] = (json.dumps(manifest, indent=2) + "\n").encode()
        else:
            out[name] = data
    return out


def compare(case: str, files: dict[str, bytes]) -> None:
    folder = GOLDEN / case
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for name, data in files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return
    assert folder.is_dir(), f"no golden files for {case}; run with UPDATE_GOLDEN=1"
    expected = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected)
    for name in files:
        assert files[name].decode() == expected[name].decode(), f"{case}/{name} differs from its golden file"


@pytest.mark.parametrize("fmt", FORMATS)
def test_solo_golden(solo, export, fmt):
    result, files = export(solo, fmt)
    compare(f"solo-{fmt}", normalise(files, solo.slug))


@pytest.mark.parametrize("fmt", FORMATS)
def test_group_golden(group, export, fmt):
    result, files = export(group, fmt)
    compare(f"group-{fmt}", normalise(files, group.slug))


def test_solo_wide_with_everything_golden(solo, export):
    """Preview and excluded sessions included, all non-identifying columns on."""
    from exports import columns

    cols = [c.name for c in columns.COLUMNS if not c.identifying]
    result, files = export(solo, "csv-wide", columns=cols, filters={"include_preview": True, "include_excluded": True})
    compare("solo-csv-wide-all", normalise(files, solo.slug))
