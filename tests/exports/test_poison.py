"""No default export of any format contains a secret: ticket codes, participant and experimenter
codes, run tokens, raw Prolific ids, SONA codes, email, names, or the ciphertext of any
encrypted field. Every byte of every file in the zip is searched (and the zip itself)."""

from __future__ import annotations

import pytest
from django.db import connection

from exports import columns as registry
from exports.models import ExportAudit
from runner.models import Session, Subject

from .dataset import POISON

FORMATS = ["json", "csv-long", "csv-wide", "psychds"]
ENCRYPTED = ("name_first", "name_last", "email", "dob", "phone", "address", "prolific_pid")


def ciphertexts() -> list[str]:
    """The raw stored values of every encrypted subject field (as they sit in the database)."""
    qn = connection.ops.quote_name
    cols = ", ".join(qn(Subject._meta.get_field(f).column) for f in ENCRYPTED)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {cols} FROM {qn(Subject._meta.db_table)}")
        values = [v for row in cursor.fetchall() for v in row if v]
    assert values and all(v.startswith("gAAAA") for v in values), "fields should be stored encrypted"
    return values


def secrets_planted() -> list[str]:
    planted = list(POISON.values())
    planted += list(Session.objects.values_list("run_token", flat=True))
    planted += list(Subject.objects.values_list("email_hmac", flat=True))
    planted += list(Subject.objects.values_list("prolific_pid_hmac", flat=True))
    planted += ["1990-07-14", "Mozilla/5.0 (Poison)"]  # date of birth, user agent
    for subject_id in Subject.objects.values_list("id", flat=True):
        planted += [str(subject_id), subject_id.hex]
    planted += ciphertexts()
    return [p for p in planted if p]


def assert_clean(path, files: dict[str, bytes], planted: list[str]) -> None:
    blobs = {"<zip>": path.read_bytes(), **files}
    for name, data in blobs.items():
        for secret in planted:
            assert secret.encode() not in data, f"{secret!r} leaked into {name}"
        assert b"identifiable" not in name.encode()


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_exports_hold_no_secret(solo, group, export, fmt):
    planted = secrets_planted()
    for experiment in (solo, group):
        result, files = export(experiment, fmt)
        assert_clean(result.path, files, planted)
        assert "identifiable" not in result.path.name


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_non_identifying_column_and_every_session_hold_no_secret(solo, group, export, fmt):
    planted = secrets_planted()
    cols = [c.name for c in registry.COLUMNS if not c.identifying]
    for experiment in (solo, group):
        result, files = export(
            experiment, fmt, columns=cols, filters={"include_preview": True, "include_excluded": True}
        )
        assert_clean(result.path, files, planted)


@pytest.mark.parametrize("fmt", FORMATS)
def test_asking_for_identifying_columns_shows_them_and_says_so(solo, export, fmt):
    """The positive control: the search above would find these values if they were there."""
    result, files = export(solo, fmt, identifying=["email", "prolific_pid"], who="tester")
    assert "identifiable" in result.path.name
    everything = b"".join(files.values())
    assert POISON["email"].encode() in everything
    assert POISON["prolific_pid"].encode() in everything
    assert any("identifiable" in name for name in files)
    audit = ExportAudit.objects.get()
    assert audit.identifying_columns == ["email", "prolific_pid"]
    assert audit.format == fmt and audit.experiment == solo and audit.who == "tester"
    assert audit.file_name == result.path.name


def test_default_exports_are_not_audited(solo, export):
    export(solo, "csv-long")
    assert not ExportAudit.objects.exists()
