"""Writes of the exports app: running an export, presets, background jobs, and data curation
(excluding sessions and subjects, deleting preview sessions)."""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from project.core.keys import WrongEncryptionKey, verify_field_key
from runner.models import Experiment, Response, Session, Subject

from . import columns as registry
from .archive import Archive, FileInfo
from .context import ExportContext
from .formats import PASSES, WRITERS, manifest
from .models import ExportAudit, ExportFormat, ExportJob, ExportPreset
from .pseudonyms import PseudonymCollision, PseudonymMap, scope_for
from .selectors import ExportFilters, count_rows, sessions_for_export

log = logging.getLogger(__name__)
FORMATS = tuple(ExportFormat.values)


class ExportError(Exception):
    """An export could not be made; ``code`` is machine-readable, the message says why."""

    def __init__(self, message: str, *, code: str):
        self.code = code
        super().__init__(message)


@dataclass
class ExportResult:
    path: Path
    format: str
    files: list[FileInfo]
    columns: list[str]
    identifying: list[str] = field(default_factory=list)
    sessions: int = 0
    participants: int = 0


def export_file_name(*, experiment: Experiment, fmt: str, now: datetime, identifiable: bool) -> str:
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{experiment.slug}_{fmt}_{stamp}{'_identifiable' if identifiable else ''}.zip"


def _destination(out: str | Path, default_name: str, identifiable: bool) -> Path:
    out = Path(out)
    if out.is_dir() or str(out).endswith(os.sep):
        return out / default_name
    if out.suffix != ".zip":
        out = out.with_name(out.name + ".zip")
    if identifiable and "identifiable" not in out.name:
        out = out.with_name(f"{out.stem}_identifiable{out.suffix}")
    return out


def _validate(fmt: str, columns, identifying, filters) -> tuple[list[str], ExportFilters]:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (choose one of: {', '.join(FORMATS)})", code="bad_format")
    try:
        chosen = registry.resolve(columns, add_identifying=identifying)
        flt = filters if isinstance(filters, ExportFilters) else ExportFilters.from_dict(filters)
    except ValueError as exc:
        raise ExportError(str(exc), code="bad_option") from exc
    return chosen, flt


def build_pseudonyms(*, experiment: Experiment, filters: ExportFilters, key: str | None = None) -> PseudonymMap:
    """Pseudonyms of every covered session's subject, checked for collisions (raises ExportError)."""
    pseudonyms = PseudonymMap(scope_for(experiment), key=key)
    pairs = sessions_for_export(experiment=experiment, filters=filters).values_list("subject_id", "id")
    rows = pairs.iterator(chunk_size=5000)
    try:
        pseudonyms.add_all(rows)
    except PseudonymCollision as exc:
        raise ExportError(str(exc), code="pseudonym_collision") from exc
    finally:
        rows.close()
    return pseudonyms


def run_export(
    *,
    experiment: Experiment,
    fmt: str,
    out: str | Path,
    columns: list[str] | None = None,
    identifying: list[str] | None = None,
    filters: ExportFilters | dict | None = None,
    user=None,
    who: str = "",
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Export ``experiment`` in ``fmt`` to ``out`` (a .zip path, or a folder to put one in).

    ``columns`` defaults to the registry's default columns; ``identifying`` adds identifying
    columns. An export with identifying columns says ``identifiable`` in its file name and
    writes an :class:`ExportAudit` row. The zip is written under a temporary name and renamed
    when complete, so a failure leaves nothing behind. Raises :class:`ExportError`.
    """
    now = now or timezone.now()
    chosen, flt = _validate(fmt, columns, identifying, filters)
    ident = registry.identifying_in(chosen)
    dest = _checked_destination(experiment, fmt, out, now, identifiable=bool(ident))
    pseudonyms = build_pseudonyms(experiment=experiment, filters=flt)
    n_sessions, n_responses = count_rows(experiment=experiment, filters=flt)
    partial = dest.with_name(dest.name + ".partial")
    prefix = f"{dest.stem}/" if fmt == "psychds" else ""
    archive = Archive(partial, now, prefix=prefix)
    ctx = ExportContext(experiment, flt, chosen, archive, pseudonyms, now, progress=progress)
    ctx.total = n_sessions + n_responses * PASSES[fmt]
    _write_archive(ctx, fmt, partial, dest)
    if progress:
        progress(ctx.total, ctx.total)
    if ident:
        _audit(ctx, fmt, dest, user=user, who=who)
    return ExportResult(dest, fmt, archive.files, chosen, ident, n_sessions, len(pseudonyms))


def _checked_destination(
    experiment: Experiment, fmt: str, out: str | Path, now: datetime, *, identifiable: bool
) -> Path:
    """Where the zip goes, once it may be written: an identifiable export needs the right
    encryption key, and the folder must exist. Raises :class:`ExportError`."""
    if identifiable:
        _check_field_key()
    default_name = export_file_name(experiment=experiment, fmt=fmt, now=now, identifiable=identifiable)
    dest = _destination(out, default_name, identifiable)
    if not dest.parent.is_dir():
        raise ExportError(f"folder {dest.parent} does not exist", code="bad_out")
    return dest


def _check_field_key() -> None:
    """An identifying export needs the key the personal fields were encrypted with."""
    try:
        verify_field_key()
    except WrongEncryptionKey as exc:
        raise ExportError(str(exc), code="wrong_key") from exc


def _write_archive(ctx: ExportContext, fmt: str, partial: Path, dest: Path) -> None:
    """Write the format's files (and the manifest) into ``partial``, then rename it to
    ``dest``; on any failure the partial file is removed."""
    archive = ctx.archive
    try:
        WRITERS[fmt](ctx)
        if fmt != "psychds":
            archive.json("manifest.json", manifest(ctx, fmt))
        archive.close()
        os.replace(partial, dest)
    except BaseException:
        archive.close()
        partial.unlink(missing_ok=True)
        raise


def _audit(ctx: ExportContext, fmt: str, dest: Path, *, user, who: str) -> None:
    """The :class:`ExportAudit` row of an export with identifying columns."""
    ExportAudit.objects.create(
        at=ctx.now,
        user=user,
        who=who or getattr(user, "username", "") or "unknown",
        experiment=ctx.experiment,
        experiment_slug=ctx.experiment.slug,
        format=fmt,
        columns=ctx.columns,
        identifying_columns=registry.identifying_in(ctx.columns),
        filters=ctx.filters.as_dict(),
        file_name=dest.name,
    )


# --------------------------------------------------------------------------- presets


def save_preset(
    *, experiment: Experiment, name: str, fmt: str, columns: list[str], filters: dict, user=None
) -> ExportPreset:
    """Create or replace the preset ``name`` of ``experiment``. Raises ExportError for bad options."""
    name = name.strip()
    if not name:
        raise ExportError("a preset needs a name", code="bad_option")
    chosen, flt = _validate(fmt, columns, None, filters)
    preset, _ = ExportPreset.objects.update_or_create(
        experiment=experiment,
        name=name,
        defaults={"format": fmt, "columns": chosen, "filters": flt.as_dict(), "created_by": user},
    )
    return preset


# --------------------------------------------------------------------------- background jobs


def start_export_job(
    *, experiment: Experiment, fmt: str, columns: list[str], filters: dict, user=None, background: bool = True
) -> ExportJob:
    """Record an export job and run it: in a background thread (after commit) or inline.

    Options are validated first (raises ExportError); failures of the run itself are
    recorded on the job (status ``failed`` with the error).
    """
    chosen, flt = _validate(fmt, columns, None, filters)
    expire_stale_jobs()
    purge_export_files()
    job = ExportJob.objects.create(
        experiment=experiment, format=fmt, columns=chosen, filters=flt.as_dict(), created_by=user
    )
    if background:
        thread = threading.Thread(target=_job_thread, args=(job.pk,), name=f"export-{job.pk}", daemon=True)
        transaction.on_commit(thread.start)
    else:
        run_export_job(job_id=job.pk)
        job.refresh_from_db()
    return job


def expire_stale_jobs(*, now: datetime | None = None) -> int:
    """Mark jobs still pending/running after ``EXPORT_JOB_TIMEOUT_MINUTES`` (default 120) as failed:
    their thread died with a server restart. Returns how many."""
    now = now or timezone.now()
    limit = now - timedelta(minutes=getattr(settings, "EXPORT_JOB_TIMEOUT_MINUTES", 120))
    return ExportJob.objects.filter(
        status__in=[ExportJob.Status.PENDING, ExportJob.Status.RUNNING], created__lt=limit
    ).update(
        status=ExportJob.Status.FAILED,
        error="The export was interrupted (server restart?). Start it again.",
        finished=now,
    )


def purge_export_files(*, now: datetime | None = None) -> int:
    """Delete job files older than ``EXPORT_FILE_DAYS`` (default 7): exports, identifiable ones
    above all, should not linger on the server. The job rows stay. Returns files deleted."""
    now = now or timezone.now()
    limit = now - timedelta(days=getattr(settings, "EXPORT_FILE_DAYS", 7))
    deleted = 0
    for job in ExportJob.objects.filter(finished__lt=limit).exclude(file=""):
        path = Path(settings.MEDIA_ROOT) / job.file.name
        if path.is_file():
            path.unlink()
            deleted += 1
        with suppress(OSError):
            path.parent.rmdir()
        ExportJob.objects.filter(pk=job.pk).update(file="", message="File deleted after retention period")
    return deleted


def _job_thread(job_id: int) -> None:
    close_old_connections()
    try:
        run_export_job(job_id=job_id)
    finally:
        connection.close()


def run_export_job(*, job_id: int) -> None:
    """Run a pending job, writing its file under MEDIA_ROOT/exports/<job id>-<random>/ and updating
    progress. The folder name carries 128 random bits: MEDIA_ROOT is served to anyone (``make
    run`` serves /media/; a production web server usually does too, for the stimuli), so an
    export must not sit at a guessable URL. Staff download it through the job page."""
    job = ExportJob.objects.select_related("experiment", "created_by").get(pk=job_id)
    ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.RUNNING, message="Exporting")
    folder = Path(settings.MEDIA_ROOT) / "exports" / f"{job_id}-{secrets.token_hex(16)}"
    folder.mkdir(parents=True, exist_ok=True)

    def progress(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        ExportJob.objects.filter(pk=job_id).update(progress=min(percent, 99), message=f"{done} of {total} rows")

    try:
        result = run_export(
            experiment=job.experiment,
            fmt=job.format,
            out=folder,
            columns=job.columns,
            filters=job.filters,
            user=job.created_by,
            progress=progress,
        )
    except Exception as exc:  # noqa: BLE001 - recorded on the job for the page to show
        log.exception("export job %s failed", job_id)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.FAILED, error=str(exc) or exc.__class__.__name__, finished=timezone.now()
        )
        return
    _job_done(job_id, result)


def _job_done(job_id: int, result: ExportResult) -> None:
    """Mark the job done with its file and a summary of what it holds."""
    summary = {
        "file": result.path.name,
        "identifying": result.identifying,
        "files": [{"name": f.name, "rows": f.rows} for f in result.files],
        "sessions": result.sessions,
    }
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportJob.Status.DONE,
        progress=100,
        message="Done",
        summary=summary,
        finished=timezone.now(),
        file=str(result.path.relative_to(Path(settings.MEDIA_ROOT))),
    )


# --------------------------------------------------------------------------- curation


def delete_preview_sessions(*, experiment: Experiment) -> dict[str, int]:
    """Delete the experiment's preview sessions, their responses and group memberships, and the
    subjects left with no session. One transaction; returns counts."""
    with transaction.atomic():
        sessions = Session.objects.select_for_update().filter(experiment=experiment, is_preview=True)
        ids = list(sessions.values_list("id", flat=True))
        subject_ids = set(sessions.exclude(subject=None).values_list("subject_id", flat=True))
        responses, _ = Response.objects.filter(session_id__in=ids).delete()
        Session.objects.filter(id__in=ids).delete()
        orphans = (
            Subject.objects.filter(id__in=subject_ids).exclude(sessions__isnull=False).values_list("id", flat=True)
        )
        orphans = [s for s in orphans if not Response.objects.filter(subject_id=s).exists()]
        Subject.objects.filter(id__in=orphans).delete()
    return {"sessions": len(ids), "responses": responses, "subjects": len(orphans)}


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ExportError("an exclusion needs a reason", code="reason_required")
    return reason


def exclude_session(*, session: Session, reason: str) -> Session:
    """Mark a session excluded from analysis with a reason (required; raises ExportError)."""
    session.excluded, session.exclusion_reason = True, _reason(reason)
    session.save(update_fields=["excluded", "exclusion_reason"])
    return session


def include_session(*, session: Session) -> Session:
    """Undo an exclusion."""
    session.excluded, session.exclusion_reason = False, ""
    session.save(update_fields=["excluded", "exclusion_reason"])
    return session


def exclude_subject(*, subject: Subject, reason: str) -> Subject:
    """Exclude a participant (all their sessions) with a reason (required; raises ExportError)."""
    subject.excluded, subject.exclusion_reason = True, _reason(reason)
    subject.save(update_fields=["excluded", "exclusion_reason"])
    return subject


def include_subject(*, subject: Subject) -> Subject:
    subject.excluded, subject.exclusion_reason = False, ""
    subject.save(update_fields=["excluded", "exclusion_reason"])
    return subject
