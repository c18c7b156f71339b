"""A zip written entry by entry, with a SHA-256 and row count for every file.

Entries are streamed: a CSV or JSON array is written row by row into the deflate stream,
never built in memory. Entry times are the export's time, so equal data give equal files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class FileInfo:
    name: str
    rows: int | None = None
    bytes: int = 0
    sha256: str = ""


class _HashingSink(io.RawIOBase):
    def __init__(self, inner, info: FileInfo):
        self.inner = inner
        self.info = info
        self.hasher = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self.hasher.update(data)
        self.info.bytes += len(data)
        self.inner.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.info.sha256 = self.hasher.hexdigest()
            self.inner.close()
        super().close()


@dataclass
class Archive:
    """Write-only zip at ``path``; ``prefix`` is a folder every entry goes under."""

    path: Path
    now: datetime
    prefix: str = ""
    files: list[FileInfo] = field(default_factory=list)

    def __post_init__(self):
        self.path = Path(self.path)
        self.zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)

    def _info(self, name: str) -> zipfile.ZipInfo:
        stamp = self.now.astimezone(UTC)
        info = zipfile.ZipInfo(self.prefix + name, date_time=stamp.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    @contextmanager
    def text(self, name: str) -> Iterator[tuple[io.TextIOWrapper, FileInfo]]:
        """A UTF-8 text stream into entry ``name``; set ``info.rows`` as you write."""
        info = FileInfo(name)
        raw = self.zip.open(self._info(name), "w", force_zip64=True)
        sink = _HashingSink(raw, info)
        stream = io.TextIOWrapper(io.BufferedWriter(sink, buffer_size=1 << 16), encoding="utf-8", newline="")
        try:
            yield stream, info
        finally:
            stream.close()
        self.files.append(info)

    @contextmanager
    def csv(self, name: str, header: list[str]) -> Iterator[tuple[Any, FileInfo]]:
        """A csv.writer into entry ``name`` with ``header`` written; rows are counted by the caller."""
        with self.text(name) as (stream, info):
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(header)
            info.rows = 0
            yield writer, info

    def json(self, name: str, obj: Any, *, rows: int | None = None) -> FileInfo:
        with self.text(name) as (stream, info):
            json.dump(obj, stream, indent=2, sort_keys=False, ensure_ascii=False)
            stream.write("\n")
            info.rows = rows
        return info

    @contextmanager
    def json_array(self, name: str) -> Iterator[Any]:
        """Write a JSON array one element at a time: ``add(obj)``; counts rows."""
        with self.text(name) as (stream, info):
            info.rows = 0
            stream.write("[")

            def add(obj: Any) -> None:
                stream.write(",\n  " if info.rows else "\n  ")
                stream.write(json.dumps(obj, ensure_ascii=False, sort_keys=False))
                info.rows += 1

            yield add
            stream.write("\n]\n" if info.rows else "]\n")

    def text_file(self, name: str, text: str) -> FileInfo:
        with self.text(name) as (stream, info):
            stream.write(text)
        return info

    def close(self) -> None:
        self.zip.close()
