"""Export services: filters, file names, failures, presets, jobs, previews, exclusions."""

from __future__ import annotations

import csv
import io
import json

import pytest

from exports import services
from exports.models import ExportJob, ExportPreset
from exports.services import ExportError, run_export
from runner.models import Response, Session, Subject

from .dataset import EXPORT_NOW


def sessions_in(files, name="golden-solo_wide.csv"):
    return [int(r["session"]) for r in csv.DictReader(io.StringIO(files[name].decode()))]


def test_filters(solo, export):
    assert sessions_in(export(solo, "csv-wide")[1]) == [101, 102, 105]
    assert sessions_in(export(solo, "csv-wide", filters={"include_preview": True})[1]) == [101, 102, 103, 105]
    assert sessions_in(export(solo, "csv-wide", filters={"include_excluded": True})[1]) == [101, 102, 104, 105]
    assert sessions_in(export(solo, "csv-wide", filters={"finished_only": True})[1]) == [101, 105]


def test_excluded_subject_drops_all_their_sessions(solo, export):
    services.exclude_subject(subject=Subject.objects.get(sessions__id=101), reason="withdrew consent")
    assert sessions_in(export(solo, "csv-wide")[1]) == [102]
    _, files = export(solo, "csv-wide", filters={"include_excluded": True})
    rows = list(csv.DictReader(io.StringIO(files["golden-solo_wide.csv"].decode())))
    assert rows[0]["excluded"] == "true" and rows[0]["exclusion_reason"] == "withdrew consent"


def test_wide_keeps_every_repetition(solo, export):
    _, files = export(solo, "csv-wide")
    row = next(csv.DictReader(io.StringIO(files["golden-solo_wide.csv"].decode())))
    assert (row["rating__f2_v1"], row["rating__f2_v2"]) == ("4", "7")


def test_manifest_counts_and_hashes(solo, export):
    import hashlib

    result, files = export(solo, "json")
    manifest = json.loads(files["manifest.json"])
    assert manifest["created"] == "2026-01-02T03:04:05.000Z"
    assert manifest["filters"] == {
        "include_preview": False,
        "include_bots": False,
        "include_excluded": False,
        "finished_only": False,
    }
    by_name = {f["name"]: f for f in manifest["files"]}
    assert by_name["sessions.json"]["rows"] == 3
    assert by_name["responses.json"]["rows"] == len(json.loads(files["responses.json"]))
    for name, entry in by_name.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()


def test_json_keeps_jspsych_data_whole(solo, export):
    _, files = export(solo, "json")
    trials = [r for r in json.loads(files["responses.json"]) if r["jspsych_data"]]
    assert trials[0]["jspsych_data"]["response"] == {"Q0": {"x": 0}, "key": "f"}


def test_out_folder_gets_a_generated_name(solo, tmp_path):
    result = run_export(experiment=solo, fmt="csv-long", out=tmp_path, now=EXPORT_NOW)
    assert result.path == tmp_path / "golden-solo_csv-long_20260102T030405Z.zip"
    ident = run_export(experiment=solo, fmt="csv-long", out=tmp_path / "mine.zip", identifying=["email"])
    assert ident.path.name == "mine_identifiable.zip"


def test_bad_options_are_clear_errors(solo, tmp_path):
    for kwargs, code in (
        ({"fmt": "xlsx"}, "bad_format"),
        ({"fmt": "json", "columns": ["nope"]}, "bad_option"),
        ({"fmt": "json", "identifying": ["participant"]}, "bad_option"),
        ({"fmt": "json", "filters": {"everything": True}}, "bad_option"),
    ):
        with pytest.raises(ExportError) as info:
            run_export(experiment=solo, out=tmp_path / "x.zip", **kwargs)
        assert info.value.code == code
    with pytest.raises(ExportError) as info:
        run_export(experiment=solo, fmt="json", out=tmp_path / "missing" / "x.zip")
    assert info.value.code == "bad_out"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_nothing(solo, tmp_path, monkeypatch):
    from exports import formats

    def boom(ctx):
        ctx.archive.json("half.json", {})
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(formats.WRITERS, "json", boom)
    with pytest.raises(RuntimeError):
        run_export(experiment=solo, fmt="json", out=tmp_path / "x.zip")
    assert list(tmp_path.iterdir()) == []


def test_progress_reaches_the_total(solo, tmp_path):
    seen = []
    run_export(experiment=solo, fmt="csv-long", out=tmp_path / "x.zip", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] > 0


def test_presets(solo):
    preset = services.save_preset(
        experiment=solo,
        name=" short ",
        fmt="csv-wide",
        columns=["participant", "value"],
        filters={"finished_only": True},
    )
    assert (preset.name, preset.columns, preset.filters["finished_only"]) == ("short", ["participant", "value"], True)
    services.save_preset(experiment=solo, name="short", fmt="json", columns=[], filters={})
    assert ExportPreset.objects.get().format == "json"
    with pytest.raises(ExportError):
        services.save_preset(experiment=solo, name="", fmt="json", columns=[], filters={})


def test_job_runs_and_records_its_file(solo, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    job = services.start_export_job(experiment=solo, fmt="csv-long", columns=[], filters={}, background=False)
    assert (job.status, job.progress) == (ExportJob.Status.DONE, 100)
    assert (tmp_path / job.file.name).is_file()
    assert job.summary["sessions"] == 3


def test_failed_job_records_the_error(solo, settings, tmp_path, monkeypatch):
    from exports import formats

    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setitem(formats.WRITERS, "json", lambda ctx: 1 / 0)
    job = services.start_export_job(experiment=solo, fmt="json", columns=[], filters={}, background=False)
    assert job.status == ExportJob.Status.FAILED and "division" in job.error


def test_delete_preview_sessions(solo):
    eve = Subject.objects.get(sessions__id=103)
    counts = services.delete_preview_sessions(experiment=solo)
    assert counts == {"sessions": 1, "responses": 6, "subjects": 0}  # eve still has session 104
    assert not Session.objects.filter(is_preview=True).exists()
    assert Subject.objects.filter(pk=eve.pk).exists()
    Session.objects.filter(pk=104).update(is_preview=True)
    counts = services.delete_preview_sessions(experiment=solo)
    assert counts["subjects"] == 1 and not Subject.objects.filter(pk=eve.pk).exists()
    assert Response.objects.filter(session_id=101).exists()


def test_exclusions_need_a_reason(solo):
    session = Session.objects.get(pk=101)
    with pytest.raises(ExportError) as info:
        services.exclude_session(session=session, reason="  ")
    assert info.value.code == "reason_required"
    services.exclude_session(session=session, reason="bot")
    session.refresh_from_db()
    assert (session.excluded, session.exclusion_reason) == (True, "bot")
    services.include_session(session=session)
    session.refresh_from_db()
    assert (session.excluded, session.exclusion_reason) == (False, "")


@pytest.mark.django_db(transaction=True)
def test_background_job_finishes(transactional_db, settings, tmp_path, fixed_key):
    import time

    from .dataset import build_solo

    settings.MEDIA_ROOT = tmp_path
    exp = build_solo()
    job = services.start_export_job(experiment=exp, fmt="psychds", columns=[], filters={})
    for _ in range(100):
        job.refresh_from_db()
        if job.status in (ExportJob.Status.DONE, ExportJob.Status.FAILED):
            break
        time.sleep(0.05)
    assert job.status == ExportJob.Status.DONE, job.error
    assert (tmp_path / job.file.name).is_file()


def test_identifying_export_refuses_a_wrong_field_key(solo, tmp_path, monkeypatch):
    from project.core.keys import WrongEncryptionKey

    def wrong():
        raise WrongEncryptionKey("FIELD_ENCRYPTION_KEY cannot decrypt the data in this database")

    monkeypatch.setattr(services, "verify_field_key", wrong)
    with pytest.raises(ExportError) as info:
        run_export(experiment=solo, fmt="csv-long", out=tmp_path / "x.zip", identifying=["email"])
    assert info.value.code == "wrong_key"
    run_export(experiment=solo, fmt="csv-long", out=tmp_path / "y.zip")  # no personal field: no key needed


def test_rows_name_shared_forms_and_unattached_stimuli(solo, export):
    from runner.models import Form, Stimulus

    blue = Stimulus.objects.create(name="blue.png")
    shared = Form.objects.create(name="shared-form")  # no owner, not in the experiment's list
    Response.objects.filter(session_id=101, item="jspsych:1").update(stimulus=blue, form=shared)
    _, files = export(solo, "csv-long")
    assert ",shared-form,1,jspsych:1,,,1,blue.png," in files["golden-solo_long.csv"].decode()
    _, files = export(solo, "json")
    assert [s["name"] for s in json.loads(files["stimuli.json"])] == ["blue.png", "red.png"]


def test_stale_jobs_fail_and_old_files_are_purged(solo, settings, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    settings.MEDIA_ROOT = tmp_path
    done = services.start_export_job(experiment=solo, fmt="csv-long", columns=[], filters={}, background=False)
    stuck = ExportJob.objects.create(experiment=solo, format="json", status=ExportJob.Status.RUNNING)
    later = timezone.now() + timedelta(days=8)
    assert services.expire_stale_jobs(now=later) == 1
    stuck.refresh_from_db()
    assert stuck.status == ExportJob.Status.FAILED and "interrupted" in stuck.error
    path = tmp_path / done.file.name
    assert path.is_file()
    assert services.purge_export_files(now=later) == 1
    done.refresh_from_db()
    assert not path.exists() and not done.file
    assert services.purge_export_files(now=timezone.now()) == 0
