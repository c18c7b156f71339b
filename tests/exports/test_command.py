"""manage.py export: writes what it says, clear errors, non-zero exit."""

from __future__ import annotations

import zipfile
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportAudit
from exports.services import save_preset


def run(*args) -> str:
    out = StringIO()
    call_command("export", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "csv-long", "csv-wide", "psychds"])
def test_each_format(solo, tmp_path, fmt):
    text = run("--experiment", solo.slug, "--format", fmt, "--out", str(tmp_path / "out.zip"))
    assert f"Wrote {tmp_path / 'out.zip'}" in text and "3 sessions" in text
    assert " rows, " in text
    assert zipfile.ZipFile(tmp_path / "out.zip").testzip() is None


def test_filters_and_identifying(solo, tmp_path):
    text = run(
        "--experiment",
        solo.slug,
        "--format",
        "csv-long",
        "--out",
        str(tmp_path),
        "--include-preview",
        "--include-excluded",
        "--identifying",
        "email,name_first",
        "--user",
        "",
    )
    assert "5 sessions" in text and "identifiable" in text and "Identifiable export: name_first, email" in text
    audit = ExportAudit.objects.get()
    assert audit.who.startswith("command line") and audit.filters["include_preview"] is True


def test_preset(solo, tmp_path):
    save_preset(
        experiment=solo,
        name="finished",
        fmt="csv-wide",
        columns=["participant", "session", "value"],
        filters={"finished_only": True},
    )
    text = run(
        "--experiment", solo.slug, "--format", "csv-wide", "--out", str(tmp_path / "x.zip"), "--preset", "finished"
    )
    assert "2 sessions" in text
    header = zipfile.ZipFile(tmp_path / "x.zip").read("golden-solo_wide.csv").decode().splitlines()[0]
    assert header.startswith("participant,session,agree__f1_v1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "nope", "--format", "json"], "no experiment with slug 'nope'"),
        (["--format", "json", "--identifying", "participant"], "not identifying column(s): participant"),
        (["--format", "json", "--identifying", "shoe_size"], "unknown column(s): shoe_size"),
        (["--format", "json", "--preset", "missing"], "no preset 'missing'"),
        (["--format", "json", "--user", "ghost"], "no user 'ghost'"),
    ],
)
def test_errors(solo, tmp_path, args, message):
    if "--experiment" not in args:
        args = ["--experiment", solo.slug, *args]
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(*args, "--out", str(tmp_path / "x.zip"))
    assert not (tmp_path / "x.zip").exists()


def test_bad_format_exits_non_zero(solo, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "manage.py", "export", "--experiment", "x", "--format", "xlsx", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "invalid choice: 'xlsx'" in proc.stderr


def exclude(*args) -> str:
    out = StringIO()
    call_command("exclude", *args, stdout=out)
    return out.getvalue()


def test_exclude_session_and_participant(solo):
    from runner.models import Session

    with pytest.raises(CommandError, match="needs a reason"):
        exclude("--session", "101")
    assert "Excluded session 101" in exclude("--session", "101", "--reason", "bot")
    assert Session.objects.get(pk=101).exclusion_reason == "bot"
    assert "Included session 101" in exclude("--session", "101", "--include")
    assert not Session.objects.get(pk=101).excluded
    ann = "65PZSHRT19FSF9SJ"  # the golden pseudonym of sessions 101 and 105
    text = exclude("--experiment", solo.slug, "--participant", ann.lower(), "--reason", "withdrew")
    assert "Excluded participant" in text and Session.objects.get(pk=105).subject.excluded
    with pytest.raises(CommandError, match="no participant"):
        exclude("--experiment", solo.slug, "--participant", "0000000000000000", "--reason", "x")
    with pytest.raises(CommandError, match="no session 999"):
        exclude("--session", "999", "--reason", "x")
