"""Saving a new state of a group session (caller holds the lock, inside its transaction).

:func:`save` writes what a transition changed. Two hot paths change many rows with one
statement instead of a transition's per-row write, each the state machine's rule in SQL
(tests/groups/test_store_rules.py checks both against the transition on random states):

- :func:`raise_acks`: ``Ack`` (a version above the acknowledged one and at most the
  current one raises it);
- :func:`save_answers`: ``Respond`` for the answering rows, and whether anyone is still
  answering (``GroupState.all_responded``: an active row, ``state.INACTIVE`` aside,
  whose run has not ended and that has not answered the step).
"""

from __future__ import annotations

import json

from django.db import connection
from django.utils import timezone

from project.core.rows import update_from

from .. import state as sm
from ..models import GroupSession, Membership


def save(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> list[str]:
    """Write the changed memberships; set ``gs``'s fields and return their names (the
    caller saves ``gs`` once, after the hooks: one UPDATE per change, not three)."""
    gs.phase, gs.step, gs.version = new.phase, new.step, new.version
    gs.participant_version, gs.changed_ms, gs.exit_loop_step = (
        new.participant_version,
        new.changed_ms,
        new.exit_loop_step,
    )
    gs.deadline_ms, gs.timer_remaining_ms, gs.timed_out_step = (
        new.deadline_ms,
        new.timer_remaining_ms,
        new.timed_out_step,
    )
    fields = ["phase", "step", "version", "participant_version", "changed_ms", "exit_loop_step"]
    fields += ["deadline_ms", "timer_remaining_ms", "timed_out_step"]
    if new.phase == sm.RUNNING and gs.started is None:
        gs.started = timezone.now()
        fields.append("started")
    if new.phase in sm.TERMINAL and gs.ended is None:
        gs.ended = timezone.now()
        fields.append("ended")
    save_members(gs, old, new)
    return fields


def save_console_change(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> None:
    """Save a change only the console sees (presence, acks): the version and the rows."""
    gs.version, gs.changed_ms = new.version, new.changed_ms
    gs.save(update_fields=["version", "changed_ms"])
    save_members(gs, old, new)


#: The membership columns a transition changes, as ``Participant`` names them.
MEMBER_FIELDS = ("connections", "status", "form", "responded_step", "acked_version", "flag", "offline_since_ms",
                 "dropped_at_ms", "bot", "replaced_by")  # fmt: skip
SAME_CHANGE_ROWS = 20  # rows changed alike from which one plain UPDATE by pseudonym is cheaper


def save_members(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> None:
    """Write every changed participant row in one statement, not one query per row. Rows
    that changed alike (an advance sets every row that answered to ``waiting``, and its
    flag to ""), at least ``SAME_CHANGE_ROWS`` of them, are one ``UPDATE ... SET`` of
    those values for their pseudonyms: at N=500 the advance's write under the lock took
    8-16 ms as a join of 500 rows of every column (``update_from``)."""
    alike: dict[tuple, list[str]] = {}
    rows = {}
    for pid, p in new.participants.items():
        before = old.participants.get(pid)
        if before == p:
            continue
        rows[pid] = p
        if before is not None:
            was, now = before.__dict__, p.__dict__
            diff = tuple((f, now[f]) for f in MEMBER_FIELDS if was[f] != now[f])
            alike.setdefault(diff, []).append(pid)
    for diff, pids in alike.items():
        if len(pids) >= SAME_CHANGE_ROWS and diff:
            _set_alike(gs.pk, dict(diff), pids)
            for pid in pids:
                del rows[pid]
    _update_rows(gs, rows)


def _set_alike(group_session_id: int, values: dict, pseudonyms: list[str]) -> None:
    """``UPDATE`` the memberships ``pseudonyms`` of a group session to the same ``values``."""
    quote = connection.ops.quote_name
    table = quote(Membership._meta.db_table)
    columns = {f.attname: f.column for f in Membership._meta.concrete_fields}
    assign = ", ".join(f"{quote(columns[name])} = %s" for name in values)
    update = (
        f"UPDATE {table} SET {assign} WHERE {quote(columns['group_session_id'])} = %s AND {quote(columns['pseudonym'])}"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one array parameter
            cursor.execute(f"{update} = ANY(%s)", [*values.values(), group_session_id, pseudonyms])
            return
        for start in range(0, len(pseudonyms), 500):  # (SQLite's limit of parameters per statement)
            chunk = pseudonyms[start : start + 500]
            cursor.execute(
                f"{update} IN ({', '.join(['%s'] * len(chunk))})", [*values.values(), group_session_id, *chunk]
            )


def _update_rows(gs: GroupSession, rows: dict) -> None:
    changed = [
        (pid, p.connections, p.status, p.form, p.responded_step, p.acked_version)
        + (p.flag, p.offline_since_ms, p.dropped_at_ms, p.bot, p.replaced_by)
        for pid, p in rows.items()
    ]
    update_members_from(
        gs.pk,
        (("p", "text"), ("c", "int"), ("s", "text"), ("f", "text"), ("r", "int"), ("a", "bigint"))
        + (("fl", "text"), ("o", "bigint"), ("d", "bigint"), ("b", "boolean"), ("rb", "text")),
        changed,
        "connections = v.c, status = v.s, form = v.f, responded_step = v.r, acked_version = v.a, "
        "flag = v.fl, offline_since_ms = v.o, dropped_at_ms = v.d, bot = v.b, replaced_by = v.rb",
    )


def update_members_from(group_session_id: int, columns, rows: list[tuple], assign: str, *, where: str = "",
                        params: tuple = ()) -> int:  # fmt: skip
    """``UPDATE`` the memberships of one group session from ``rows`` (tuples in the order
    of ``columns``, ``(name, PostgreSQL type)`` pairs, the first the pseudonym) in one
    statement (``project.core.rows.update_from``): ``assign`` is the SET list and
    ``where`` more conditions, both naming the row's values ``v.<name>`` (``params`` fill
    the ``%s`` in ``where``). Returns how many memberships changed."""
    table = connection.ops.quote_name(Membership._meta.db_table)
    match = f"{table}.group_session_id = %s AND {table}.pseudonym = v.{columns[0][0]} {where}"
    return update_from(Membership._meta.db_table, columns, rows, assign, match, (group_session_id, *params))


def raise_acks(group_session_id: int, current_version: int, acks: dict[str, int]) -> int:
    """``Ack`` for many rows: ``acked_version = v`` where ``v`` is above it and at most
    ``current_version``; the number of rows changed."""
    return update_members_from(
        group_session_id,
        (("p", "text"), ("a", "bigint")),
        [(str(p), int(v)) for p, v in acks.items()],
        "acked_version = v.a",
        where="AND v.a > acked_version AND v.a <= %s",
        params=(current_version,),
    )


def checkpoint_context(gs: GroupSession, group, *, save: bool = True) -> dict:
    """Put what the hooks of ``group`` (``hooks.Group``) left in the context into
    ``GroupSession.context`` (caller holds the lock; saved in its transaction, so it
    commits or rolls back with the change; the context store's copy follows from the
    committed row, see ``groups.context``). ``save=False``: the caller saves the field
    with its others."""
    gs.context = group.context.value
    if save:
        gs.save(update_fields=["context"])
    return gs.context


def save_answers(gs: GroupSession, members: list[tuple[int, str, int | None, str]], step: int) -> bool:
    """Write the answering memberships' new (status, responded_step, flag) and ``gs``'s new
    version, and say whether someone in the group (not removed, not finished, run not
    over) still has not answered ``step``: one round trip to the database on PostgreSQL,
    made under the group session's lock (each statement more there is a wait for all the
    others). The memberships written here are left out of the count, so the statement's
    own updates not being visible to its count does not matter (still_answering_query)."""
    ids = [mid for mid, *_ in members]
    count, params = still_answering_query(gs.pk, step, exclude=ids)
    if connection.vendor != "postgresql":  # SQLite has no UPDATE in WITH: three statements
        table = connection.ops.quote_name(Membership._meta.db_table)
        update_from(Membership._meta.db_table, (("i", "bigint"), ("s", "text"), ("r", "int"), ("fl", "text")),
                    members, "status = v.s, responded_step = v.r, flag = v.fl", f"{table}.id = v.i")  # fmt: skip
        gs.save(update_fields=["version", "participant_version", "changed_ms"])
        with connection.cursor() as cursor:
            cursor.execute(count, params)
            return cursor.fetchone() is not None
    quote = connection.ops.quote_name
    table = quote(Membership._meta.db_table)
    sql = (
        f"WITH m AS (UPDATE {table} SET status = v.s, responded_step = v.r, flag = v.fl"
        f" FROM jsonb_to_recordset(%s::jsonb) AS v(i bigint, s text, r int, fl text) WHERE {table}.id = v.i),"
        f" g AS (UPDATE {quote(GroupSession._meta.db_table)} SET version = %s, participant_version = %s,"
        f" changed_ms = %s WHERE id = %s) SELECT ({count})"
    )
    rows = json.dumps([{"i": mid, "s": status, "r": responded, "fl": flag} for mid, status, responded, flag in members])
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows, gs.version, gs.participant_version, gs.changed_ms, gs.pk, *params])
        return cursor.fetchone()[0] is not None


def still_answering_query(group_session_id: int, step: int, *, exclude: int | list[int]) -> tuple[str, list]:
    """Someone in the group session still has to answer ``step`` (a row, else none);
    memberships ``exclude`` (those answering now) left out. Tests read its plan.

    ``GroupState.all_responded`` in SQL: an active row (status not in ``state.INACTIVE``,
    run not over: ``participant_of``) that has not answered ``step``. One statement
    whatever the group's size: this group's memberships (by index), each one's run
    checked by primary key, stopping at the first found (a list of the group's run ids
    sent back to the database made N answers cost N squared). The run is checked in a
    scalar subquery, which PostgreSQL never turns into a join: as an ``EXISTS``, stale
    statistics made it scan every run ever stored (46 ms instead of 0.3 ms with 20,000
    runs, under the lock, for every answer)."""
    from runner.models import Session

    excluded = [exclude] if isinstance(exclude, int) else list(exclude) or [0]
    inactive = sorted(sm.INACTIVE)
    quote = connection.ops.quote_name
    membership, run = quote(Membership._meta.db_table), quote(Session._meta.db_table)
    sql = (
        f"SELECT 1 FROM {membership} m WHERE m.group_session_id = %s"
        f" AND m.id NOT IN ({', '.join(['%s'] * len(excluded))})"
        f" AND m.status NOT IN ({', '.join(['%s'] * len(inactive))})"
        " AND (m.responded_step IS NULL OR m.responded_step <> %s)"
        " AND (m.dropped_at_ms IS NULL OR m.bot)"  # a dropout without a bot holds nobody back (issue 20)
        f' AND (SELECT s."end" FROM {run} s WHERE s.id = m.session_id) IS NULL LIMIT 1'
    )
    return sql, [group_session_id, *excluded, *inactive, step]
