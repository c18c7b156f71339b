"""Fixtures for export tests: the fixed data set and a helper that runs an export and unzips it."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from django.test import override_settings

from exports.services import run_export

from .dataset import EXPORT_NOW, PSEUDONYM_KEY, build_group, build_solo


@pytest.fixture
def fixed_key():
    with override_settings(PSEUDONYM_KEY=PSEUDONYM_KEY):
        yield PSEUDONYM_KEY


@pytest.fixture
def solo(db, fixed_key):
    return build_solo()


@pytest.fixture
def group(db, fixed_key):
    return build_group()


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture
def export(tmp_path):
    """``export(experiment, fmt, **options) -> (result, {entry name: bytes})``."""

    def run(experiment, fmt, **options):
        options.setdefault("now", EXPORT_NOW)
        result = run_export(experiment=experiment, fmt=fmt, out=tmp_path / f"{experiment.slug}-{fmt}.zip", **options)
        return result, read_zip(result.path)

    return run
