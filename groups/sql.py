"""Hand-written SQL for the reads that run at every poll, change or snapshot, written
once per database vendor from the models' metadata (so no column name is typed twice)."""

from __future__ import annotations

from django.db import connection

_statements: dict[tuple[str, str], str] = {}  # (name, database vendor) -> SQL


def statement(name: str, write) -> str:
    """The SQL ``write(quote_name)`` returns, written once per database vendor from the
    models' metadata (the reads every change and every snapshot make: at N = 1000 the
    ORM's ``values_list`` of the memberships cost 3.3-4.3 ms of CPU against 1.7 ms for
    the same rows by hand, bench/analysis.md)."""
    key = (name, connection.vendor)
    if key not in _statements:
        _statements[key] = write(connection.ops.quote_name)
    return _statements[key]
