"""Model rows read by SQL written once: for the few reads every request of a running
experiment makes (the run by its cookie, the run locked, its forms and questions, the
group session and the participant's place in it), and the UPDATE of many rows at once.

Why: on this project's 2-core machine the ORM spends 1.3-2 ms of CPU building each
such query (``SQLCompiler.as_sql``: joins, columns, ordering) against 0.3-0.4 ms to
send it and read the row, and an answer made ten of them (bench/analysis.md, answers).
A :class:`Select` builds its statement from the models' metadata the first time it runs
and from then on only sends it; the rows become model instances exactly as the ORM
makes them (``Model.from_db`` after each column's database converters, related rows
cached as ``select_related`` would), so callers cannot tell the difference.

What stays here, measured by ``bench/rows.py`` (each statement against the ORM query
loading the same rows, same run, 5 rounds x 200 calls, median; microseconds per call,
wall time; ratio = ORM / rows.py, so above 1 is a win for rows.py; PostgreSQL 15 and
SQLite, this 2-core machine, 2026-12-06)::

    statement (its caller)                       PostgreSQL: ORM  rows   ratio   SQLite: ORM  rows  ratio
    run by cookie token (runner.run_cookie)                  3538   712   4.97             728    70  10.45
    an experiment's forms (runner.selectors)                 3037  1247   2.44             557   150   3.72
    a form's questions (runner.selectors)                    4640  2291   2.02             672   204   3.30
    the run, locked (runner.services)                        2568   848   3.03             750   114   6.58
    a batch's runs, locked (runner.batching)                 3334  1426   2.34             813   247   3.29
    save_fields of 8 runs vs bulk_update (batching)         11281  1478   7.63            7579   386  19.65
    a run's membership (groups.selectors)                    2623   510   5.15            1555   118  13.14
    memberships of 8 runs, select_in (groups.selectors)      1411   550   2.57            2522   538   4.68
    the group session, locked (groups.services)               863   315   2.74            1271   192   6.61

Every one wins by 2x or more on both databases (CPU alone: 3x or more), so all stay;
``update_from`` is what ``save_fields`` (measured above) and the groups' batched
membership updates are made of. ``pipelined`` is not a query but psycopg's pipeline
mode, which the ORM has no way to use. Anything else (filters of its own, reads
off the hot path) belongs in the ORM.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connections
from django.db.models import Model


@dataclass(frozen=True)
class _Part:
    path: tuple[str, ...]  # the foreign keys followed from the main model ("" for it)
    model: type[Model]
    alias: str
    fields: tuple  # concrete fields, in column order
    names: tuple  # their attnames, for Model.from_db
    via: Any = None  # the foreign key on the parent part that leads here (None for the main model)
    start: int = 0  # index of its first column in a row


def _fields(model) -> tuple[tuple, tuple]:
    fields = tuple(model._meta.concrete_fields)
    return fields, tuple(f.attname for f in fields)


class Select:
    """``SELECT`` the concrete columns of ``model`` (alias ``t0``) and of the rows its
    foreign keys in ``related`` point to (``"question__data_format"`` follows two; the
    aliases are ``t1``, ``t2``... in that order, joined INNER, so only non-null keys),
    then ``where``, e.g. ``'t0."id" = %s'``, with its parameters given to :meth:`all` /
    :meth:`first`; then ``lock`` (``"FOR UPDATE OF t0"``) where the database locks rows
    (SQLite locks the whole database for a write transaction instead). ``extra``: SQL
    expressions selected after the columns (no converters); each row is then a tuple
    ``(instance, *their values)``. ``prepare``: on PostgreSQL, sent with its parameters
    bound by the server, so that a connection that sent it a few times has it prepared
    and planned once (for a statement whose planning costs more than its execution)."""

    def __init__(self, model: type[Model], *, related: tuple[str, ...] = (), where: str, lock: str = "",
                 using: str = "default", extra: tuple[str, ...] = (), prepare: bool = False):  # fmt: skip
        self.model, self.related, self.where, self.lock, self.using = model, related, where, lock, using
        self.extra, self.prepare = extra, prepare
        self._compiled: tuple[str, tuple[_Part, ...], list] | None = None

    def _compile(self):
        if self._compiled is not None:
            return self._compiled
        connection = connections[self.using]
        quote = connection.ops.quote_name
        parts = [_Part((), self.model, "t0", *_fields(self.model))]
        width = len(parts[0].fields)
        joins = []
        for spec in self.related:
            path = tuple(spec.split("__"))
            parent = next(p for p in parts if p.path == path[:-1])
            field = parent.model._meta.get_field(path[-1])
            target = field.related_model
            alias = f"t{len(parts)}"
            parts.append(_Part(path, target, alias, *_fields(target), via=field, start=width))
            width += len(parts[-1].fields)
            joins.append(
                f" INNER JOIN {quote(target._meta.db_table)} {alias}"
                f" ON {alias}.{quote(field.target_field.column)} = {parent.alias}.{quote(field.column)}"
            )
        columns = ", ".join([*(f"{p.alias}.{quote(f.column)}" for p in parts for f in p.fields), *self.extra])
        sql = f"SELECT {columns} FROM {quote(self.model._meta.db_table)} t0{''.join(joins)} WHERE {self.where}"
        if self.lock and connection.features.has_select_for_update:
            sql += f" {self.lock}"
        converters = []  # (column index, [converter]) as the ORM's compiler finds them
        index = 0
        for part in parts:
            for field in part.fields:
                col = field.get_col(part.alias)
                found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
                if found:
                    converters.append((index, found, col))
                index += 1
        self._compiled = (sql, tuple(parts), converters)
        return self._compiled

    def all(self, *params) -> list:
        return self.send(*params)()

    def send(self, *params):
        """Send the statement now and return a function that reads its rows (as
        :meth:`all` returns them) when called: inside :func:`pipelined`, statements sent
        one after another travel together and are waited for once."""
        sql, parts, converters = self._compile()
        connection = connections[self.using]
        cursor = _prepared_cursor(connection) if self.prepare else connection.cursor()
        cursor.execute(sql, params)
        if self.prepare and connection.queries_logged:
            _name_prepared(connection, sql)

        def rows() -> list:
            with cursor:
                found = cursor.fetchall()
            if self.extra:
                width = len(self.extra)
                return [(self._load(row, parts, converters, connection), *row[-width:]) for row in found]
            return [self._load(row, parts, converters, connection) for row in found]

        return rows

    def first(self, *params):
        """The first row's instance, or None (the ``where`` says the order)."""
        found = self.all(*params)
        return found[0] if found else None

    def get(self, *params):
        """The first row's instance; raises the model's ``DoesNotExist`` if there is none
        (for lookups by a key: unlike the ORM's ``get``, more rows are not an error)."""
        found = self.first(*params)
        if found is None:
            raise self.model.DoesNotExist(f"{self.model._meta.object_name} matching query does not exist.")
        return found

    def _load(self, row, parts, converters, connection):
        values = list(row)
        for index, found, col in converters:
            for converter in found:
                values[index] = converter(values[index], col, connection)
        instances = {}
        for part in parts:
            instance = part.model.from_db(self.using, part.names, values[part.start : part.start + len(part.fields)])
            instances[part.path] = instance
            if part.via is not None:  # cached on its parent, as select_related does
                part.via.set_cached_value(instances[part.path[:-1]], instance)
        return instances[()]


def _name_prepared(connection, sql: str) -> None:
    """Django's debug cursor logs a prepared statement's text as None (psycopg sent only
    its name): log the statement's SQL instead, so that ``CaptureQueriesContext`` and
    ``connection.queries`` show what was read."""
    logged = connection.queries_log[-1] if connection.queries_log else None
    if logged is not None and logged.get("sql") is None:
        logged["sql"] = sql


def _prepared_cursor(connection):
    """PostgreSQL: a cursor binding parameters on the server, so that psycopg prepares the
    statement (at its first use on a connection: ``prepare_threshold`` 0 in the database's
    OPTIONS, settings) and the server plans it once per connection; elsewhere the usual cursor."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if connection.vendor != "postgresql" or not is_psycopg3:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = ServerBindingCursor(connection.connection)
    return connection._prepare_cursor(raw)


@lru_cache(maxsize=512)
def select_in(model: type[Model], column: str, count: int, *, related: tuple[str, ...] = ()) -> Select:
    """The :class:`Select` of ``model`` rows whose ``column`` is one of ``count`` values
    (``IN (%s, ...)``), kept per count: compiled once per batch size."""
    placeholders = ", ".join(["%s"] * count)
    return Select(model, related=related, where=f't0."{column}" IN ({placeholders})')


def update_from(table: str, columns, rows: list[tuple], assign: str, match: str, params: tuple = (), *,
                count: bool = True) -> int | None:  # fmt: skip
    """``UPDATE table`` from ``rows`` (tuples in the order of ``columns``, ``(name,
    PostgreSQL type)`` pairs) in one statement: ``assign`` is the SET list and ``match``
    the WHERE clause, both naming a row's values ``v.<name>`` (``params`` fill the ``%s``
    in ``match``). PostgreSQL joins a ``jsonb_to_recordset`` of the rows (one parameter;
    values must be JSON), SQLite (>= 3.33) a ``VALUES`` list (500 rows per statement;
    values as the database stores them). Returns how many rows changed."""
    import json

    from django.db import connection

    if not rows:
        return 0
    names = [name for name, _ in columns]
    quote = connection.ops.quote_name
    table = quote(table)
    update = f"UPDATE {table} SET {assign}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            recordset = ", ".join(f"{quote(name)} {kind}" for name, kind in columns)
            cursor.execute(
                f"{update} FROM jsonb_to_recordset(%s::jsonb) AS v({recordset}) WHERE {match}",
                [json.dumps([dict(zip(names, row, strict=True)) for row in rows], default=_json_value), *params],
            )
            return cursor.rowcount if count else None
        changed = 0
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            values = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(chunk))
            cursor.execute(
                f"WITH v({', '.join(quote(n) for n in names)}) AS (VALUES {values}) {update} FROM v WHERE {match}",
                [*(x for row in chunk for x in row), *params],
            )
            cursor.execute("SELECT changes()")  # sqlite3 gives no rowcount for a statement opening with WITH
            changed += cursor.fetchone()[0]
        return changed


def save_fields(instances: list[Model], fields: list[str], *, count: bool = True) -> int | None:
    """Save ``fields`` of many instances of one model in one statement (``update_from``),
    where ``Model.save(update_fields=...)`` would send one each. Values go through each
    field's ``get_db_prep_save`` on SQLite and as JSON on PostgreSQL (JSON fields as their
    value, dates as ISO text). Returns how many rows changed (``count=False``: None, not
    waiting for the statement, e.g. inside ``pipelined``)."""
    from django.db import connection

    if not instances:
        return 0
    meta = instances[0]._meta
    concrete = [meta.get_field(name) for name in fields]
    key = meta.pk
    columns = [(key.column, key.db_type(connection))] + [(f.column, f.db_type(connection)) for f in concrete]
    postgres = connection.vendor == "postgresql"

    def value(f, instance):
        raw = getattr(instance, f.attname)
        return raw if postgres else f.get_db_prep_save(raw, connection)

    rows = [(value(key, i), *(value(f, i) for f in concrete)) for i in instances]
    quote = connection.ops.quote_name
    assign = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in concrete)
    match = f"{quote(meta.db_table)}.{quote(key.column)} = v.{quote(key.column)}"
    return update_from(meta.db_table, columns, rows, assign, match, count=count)


def _json_value(value):
    """Dates in full (DjangoJSONEncoder cuts datetimes to milliseconds), then as Django's."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    from django.core.serializers.json import DjangoJSONEncoder

    return DjangoJSONEncoder().default(value)


@contextmanager
def pipelined(using: str = "default"):
    """Statements sent inside are not waited for one by one: on PostgreSQL the
    connection is in pipeline mode (psycopg 3), each result is read when it is first
    fetched and the rest at the end; elsewhere nothing changes. For a few independent
    statements of one transaction (a batch of answers, runner/batching.py): under load
    every round trip is also a wait for the GIL. Not for code that expects a failing
    statement to raise where it is executed (hooks, savepoints)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield
