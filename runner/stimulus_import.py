"""Stimulus import (PyEnsemble "Importing stimuli"): a zip of media files plus a CSV
table, or the CSV alone when the files are already in storage.

The table needs ``name`` and ``location``; optional columns are ``description``,
``file_format``, ``duration`` and attribute columns ``attribute__<name>__text`` /
``attribute__<name>__double``. Every row is checked first; any error imports nothing
and lists the errors with CSV row numbers (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import posixpath
import zipfile
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from runner.models import Attribute, Experiment, ExperimentXStimulus, Stimulus, StimulusXAttribute

REQUIRED = ("name", "location")
OPTIONAL = ("description", "file_format", "duration")
ATTRIBUTE_TYPES = ("text", "double")
MAX_ROWS = 20_000


def limits() -> dict[str, int]:
    """Zip limits (settings, with defaults; docs/security.md): members, unpacked bytes in
    all, unpacked bytes of the CSV table. Checked from the zip's directory before anything
    is unpacked, so a zip bomb is refused without being inflated."""
    return {
        "files": int(getattr(settings, "STIMULUS_IMPORT_MAX_FILES", MAX_ROWS + 100)),
        "unpacked": int(getattr(settings, "STIMULUS_IMPORT_MAX_UNPACKED_BYTES", 2 * 1024**3)),
        "table": int(getattr(settings, "STIMULUS_IMPORT_MAX_TABLE_BYTES", 20 * 1024**2)),
    }


def _unsafe_location(location: str) -> bool:
    """A storage path that could leave the media folder: absolute, ``..``, backslashes, NUL."""
    return location.startswith(("/", "~")) or "\\" in location or "\x00" in location or ".." in location.split("/")


@dataclass
class RowError:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}" if self.row else self.message


class StimulusImportError(Exception):
    """Nothing was imported; ``errors`` lists every problem found (row numbers from 1 = header)."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:10]))


@dataclass
class ParsedRow:
    row: int
    name: str
    location: str
    fields: dict
    attributes: list[tuple[str, str, object]] = field(default_factory=list)


@dataclass
class ImportResult:
    created: list[Stimulus]
    files_stored: int


def _read_table(raw: bytes) -> tuple[list[str], list[dict]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StimulusImportError([RowError(0, "the table is not UTF-8 text")]) from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    return header, list(reader)


def _check_header(header: list[str]) -> list[RowError]:
    errors = [RowError(1, f"missing required column '{col}'") for col in REQUIRED if col not in header]
    for col in header:
        if col in REQUIRED or col in OPTIONAL:
            continue
        parts = col.split("__")
        if len(parts) != 3 or parts[0] != "attribute" or not parts[1] or parts[2] not in ATTRIBUTE_TYPES:
            errors.append(
                RowError(
                    1,
                    f"unknown column '{col}' (attribute columns look like attribute__<name>__text "
                    "or attribute__<name>__double)",
                )
            )
    return errors


def _location_errors(number: int, location: str, media: set[str] | None) -> list:
    """What is wrong with a row's file: none given, an unsafe path, or not in the zip
    (``media``) or, without a zip, not in storage."""
    if not location:
        return [RowError(number, "location is empty")]
    if _unsafe_location(location):
        return [
            RowError(
                number, f"location '{location}' must be a plain relative path (no '..', no leading '/', no backslashes)"
            )
        ]
    if media is not None and location not in media:
        return [RowError(number, f"file '{location}' is not in the zip")]
    if media is None and not default_storage.exists(location):
        return [RowError(number, f"file '{location}' is not in storage")]
    return []


def _attributes(number: int, raw: dict, header: list[str], errors: list) -> list[tuple]:
    """The row's ``attribute__<name>__<type>`` values that are given: (name, type, value),
    a ``double`` as a float; a value that is not a number goes to ``errors``."""
    attributes = []
    for col in header:
        if not col.startswith("attribute__"):
            continue
        _, attr_name, attr_type = col.split("__")
        value = (raw.get(col) or "").strip()
        if value == "":
            continue
        if attr_type == "double":
            try:
                value = float(value)
            except ValueError:
                errors.append(RowError(number, f"{col} value '{value}' is not a number"))
                continue
        attributes.append((attr_name, attr_type, value))
    return attributes


def _parse_row(number: int, raw: dict, header: list[str], media: set[str] | None) -> tuple[ParsedRow | None, list]:
    name = (raw.get("name") or "").strip()
    location = (raw.get("location") or "").strip()
    errors = [] if name else [RowError(number, "name is empty")]
    errors += _location_errors(number, location, media)
    fields = {
        "description": (raw.get("description") or "").strip(),
        "file_format": (raw.get("file_format") or "").strip() or posixpath.splitext(location)[1].lstrip(".").lower(),
    }
    duration = (raw.get("duration") or "").strip()
    if duration:
        try:
            fields["duration"] = float(duration)
        except ValueError:
            errors.append(RowError(number, f"duration '{duration}' is not a number"))
    attributes = _attributes(number, raw, header, errors)
    parsed = ParsedRow(number, name, location, fields, attributes) if not errors else None
    return parsed, errors


def parse(*, table: bytes, media_names: set[str] | None) -> list[ParsedRow]:
    """Check the whole table; return parsed rows or raise :class:`StimulusImportError`."""
    header, rows = _read_table(table)
    errors = _check_header(header)
    if errors:
        raise StimulusImportError(errors)
    if not rows:
        raise StimulusImportError([RowError(0, "the table has no rows")])
    if len(rows) > MAX_ROWS:
        raise StimulusImportError([RowError(0, f"the table has more than {MAX_ROWS} rows")])
    parsed: list[ParsedRow] = []
    seen: dict[str, int] = {}
    existing = set(
        Stimulus.objects.filter(name__in=[(r.get("name") or "").strip() for r in rows]).values_list("name", flat=True)
    )
    for number, raw in enumerate(rows, start=2):
        row, row_errors = _parse_row(number, raw, header, media_names)
        errors += row_errors
        name = (raw.get("name") or "").strip()
        if name in seen:
            errors.append(RowError(number, f"name '{name}' repeats row {seen[name]}"))
        elif name in existing:
            errors.append(RowError(number, f"a stimulus named '{name}' already exists"))
        seen.setdefault(name, number)
        if row:
            parsed.append(row)
    if errors:
        raise StimulusImportError(sorted(errors, key=lambda e: e.row))
    return parsed


def _check_archive(archive: zipfile.ZipFile) -> None:
    """Refuse a zip with too many members or too much unpacked data (before inflating)."""
    lim = limits()
    infos = archive.infolist()
    if len(infos) > lim["files"]:
        raise StimulusImportError([RowError(0, f"the zip holds {len(infos)} files; the limit is {lim['files']}")])
    unpacked = sum(i.file_size for i in infos)
    if unpacked > lim["unpacked"]:
        raise StimulusImportError(
            [RowError(0, f"the zip unpacks to {unpacked / 1e6:.0f} MB; the limit is {lim['unpacked'] / 1e6:.0f} MB")]
        )


def _read_member(archive: zipfile.ZipFile, name: str, *, limit: int | None = None) -> bytes:
    info = archive.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise StimulusImportError([RowError(0, f"'{name}' is larger than {limit / 1e6:.0f} MB")])
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
        raise StimulusImportError([RowError(0, f"'{name}' cannot be unpacked ({exc})")]) from exc


def _find_table(archive: zipfile.ZipFile) -> tuple[str, dict[str, str]]:
    names = [n for n in archive.namelist() if not n.endswith("/") and "__MACOSX" not in n]
    tables = [n for n in names if n.lower().endswith(".csv")]
    if len(tables) != 1:
        raise StimulusImportError([RowError(0, f"the zip must hold exactly one .csv table (found {len(tables)})")])
    # Files may sit in a folder inside the zip; ``location`` is matched on the path
    # relative to the table's folder, or on the bare file name.
    folder = posixpath.dirname(tables[0])
    media = {}
    for n in names:
        if n == tables[0]:
            continue
        rel = posixpath.relpath(n, folder) if folder else n
        media[rel] = n
        media.setdefault(posixpath.basename(n), n)
    return tables[0], media


@transaction.atomic
def _write(rows: list[ParsedRow], *, archive, media: dict[str, str] | None, experiment, stored: list[str]):
    created = []
    attrs: dict[tuple[str, str], Attribute] = {}
    for row in rows:
        stim = Stimulus(name=row.name, **row.fields)
        if archive is not None:
            saved = default_storage.save(
                f"stimuli/{posixpath.basename(row.location)}", ContentFile(_read_member(archive, media[row.location]))
            )
            stored.append(saved)
            stim.location.name = saved
        else:
            stim.location.name = row.location
        stim.save()
        created.append(stim)
        for attr_name, attr_type, value in row.attributes:
            key = (attr_name, attr_type)
            if key not in attrs:
                attrs[key], _ = Attribute.objects.get_or_create(name=attr_name, attribute_type=attr_type)
            StimulusXAttribute.objects.create(
                stimulus=stim,
                attribute=attrs[key],
                value_text=value if attr_type == "text" else "",
                value_double=value if attr_type == "double" else None,
            )
        if experiment is not None:
            ExperimentXStimulus.objects.create(experiment=experiment, stimulus=stim)
    return created


def import_stimuli(*, table: bytes | None = None, zip_bytes=None, experiment: Experiment | None = None) -> ImportResult:
    """Import stimuli all-or-nothing (one transaction; files stored for a failed
    import are deleted again). Give ``zip_bytes`` (media + one CSV inside, or a CSV
    given separately as ``table``; bytes or a seekable file such as an upload, which is
    then read member by member) or ``table`` alone for files already in storage.
    Locations must be plain relative paths; the zip is checked against :func:`limits`.
    Raises :class:`StimulusImportError` listing every row error."""
    archive = None
    media = None
    if zip_bytes is not None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(zip_bytes) if isinstance(zip_bytes, bytes) else zip_bytes)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise StimulusImportError([RowError(0, "the uploaded file is not a zip archive")]) from exc
        _check_archive(archive)
        if table is None:
            table_name, media = _find_table(archive)
            table = _read_member(archive, table_name, limit=limits()["table"])
        else:
            media = {n: n for n in archive.namelist() if not n.endswith("/")}
            media.update({posixpath.basename(n): n for n in list(media)})
    if table is None:
        raise StimulusImportError([RowError(0, "upload a CSV table, a zip, or both")])
    rows = parse(table=table, media_names=set(media) if media is not None else None)
    stored: list[str] = []
    try:
        created = _write(rows, archive=archive, media=media, experiment=experiment, stored=stored)
    except Exception:
        for name in stored:
            default_storage.delete(name)
        raise
    return ImportResult(created=created, files_stored=len(stored))
