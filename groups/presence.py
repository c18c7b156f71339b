"""Presence and acknowledgements of participant sockets, written in batches.

A server process's hub (``realtime.broadcast.Hub``) collects what its sockets report
for ``GROUP_PRESENCE_FLUSH_SECONDS`` and writes it with one call per group session:

- ``record_acks``: only acknowledgements (what every participant sends after every
  state: 1000 of them after each advance of a group of 1000). One short transaction
  of three statements, no state loaded, no state machine run: an acknowledgement
  only ever raises a participant's ``acked_version`` to a version that was sent,
  which one ``UPDATE`` expresses exactly. It is a console-only change, and the
  console's snapshot is read once, a moment later, by the process's publisher thread
  (not in the database thread the next advance is waiting for).
- ``record_presence``: connection changes (and any acks with them) through the
  state machine, as one change: one lock, two queries for all the rows, one
  console-only version, published from the state in hand.
"""

from __future__ import annotations

import json
from dataclasses import replace

from django.db import connection, transaction

from realtime.broadcast import FLUSH_SECONDS, broadcast_state

from . import state as sm
from .models import GroupSession, Membership
from .selectors import load_state
from .services import _lock, _update_memberships, now_ms, publish_on_commit
from .state import GroupError


def record_acks(*, group_session: GroupSession | int, acks: dict[str, int]) -> int | None:
    """Raise each participant's acknowledged version (pseudonym -> highest version it
    received) as ONE console-only change; returns its version, or None when nothing
    changed. What ``record_presence`` does with acks alone, and what the state
    machine's ``Ack`` allows: unknown pseudonyms, versions never sent (above the
    current one) and versions not above the acknowledged one change nothing.
    Locks the group session; raises ``not_found``."""
    if not acks:
        return None
    with transaction.atomic():
        gs = _lock(group_session)
        if not _raise_acks(gs.pk, gs.version, acks):
            return None
        gs.version, gs.changed_ms = gs.version + 1, now_ms()
        GroupSession.objects.filter(pk=gs.pk).update(version=gs.version, changed_ms=gs.changed_ms)
        transaction.on_commit(lambda: broadcast_state(gs.pk, within=FLUSH_SECONDS))
        return gs.version


def _raise_acks(group_session_id: int, current_version: int, acks: dict[str, int]) -> int:
    """``acked_version = v`` where ``v`` is above it and at most ``current_version``;
    the number of rows changed."""
    table = connection.ops.quote_name(Membership._meta.db_table)
    assign = f"UPDATE {table} SET acked_version = v.a"
    where = (
        f"WHERE {table}.group_session_id = %s AND {table}.pseudonym = v.p"
        f" AND v.a > {table}.acked_version AND v.a <= %s"
    )
    items = [(str(p), int(v)) for p, v in acks.items()]
    changed = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            rows = json.dumps([{"p": p, "a": v} for p, v in items])
            cursor.execute(
                f"{assign} FROM jsonb_to_recordset(%s::jsonb) AS v(p text, a bigint) {where}",
                [rows, group_session_id, current_version],
            )
            return cursor.rowcount
        for start in range(0, len(items), 500):  # SQLite >= 3.33: UPDATE ... FROM a VALUES list
            chunk = items[start : start + 500]
            values = ", ".join(["(%s, %s)"] * len(chunk))
            cursor.execute(
                f"WITH v(p, a) AS (VALUES {values}) {assign} FROM v {where}",
                [*(x for row in chunk for x in row), group_session_id, current_version],
            )
            cursor.execute("SELECT changes()")  # sqlite3 gives no rowcount for a statement opening with WITH
            changed += cursor.fetchone()[0]
    return changed


def record_presence(
    *, group_session: GroupSession | int, acks: dict[str, int] | None = None, connections: dict[str, int] | None = None
) -> sm.GroupState | None:
    """Apply a batch of acknowledgements (pseudonym -> highest version received) and
    connection changes (pseudonym -> +n opened / -n closed sockets) as ONE change:
    one lock, two queries for all the rows, one console-only version, one broadcast.

    This is what sockets use (``realtime.broadcast.Hub`` collects acks and presence
    for ``GROUP_PRESENCE_FLUSH_SECONDS``), instead of one transaction per ack.
    Entries the single-item services would refuse (``unknown_participant``,
    ``kicked`` on connect, ``bad_version``) are skipped. Returns the new state, or
    None when nothing changed. Locks the group session; raises ``not_found``.
    """
    with transaction.atomic():
        gs = _lock(group_session)
        old, _ = load_state(gs)
        at = now_ms()
        rows = dict(old.participants)
        for pid, delta in (connections or {}).items():
            action = sm.Connect(pid) if delta > 0 else sm.Disconnect(pid)
            for _ in range(abs(delta)):
                rows = _one(old, rows, pid, action, at)
        for pid, version in (acks or {}).items():
            if version <= old.version:  # never more than what was sent before this batch
                rows = _one(old, rows, pid, sm.Ack(pid, version), at)
        if rows == dict(old.participants):
            return None
        new = replace(old, version=old.version + 1, participants=rows, changed_ms=at)
        _save_presence(gs, old, new)
        publish_on_commit(gs, new)
        return new


def _one(state: sm.GroupState, rows: dict, pid: str, action, at: int) -> dict:
    """``action`` (about ``pid`` only) through the state machine on a state holding just
    that participant (so a batch of N acks costs N, not N squared); refusals skip it."""
    if pid not in rows:
        return rows
    try:
        mini, _ = sm.transition(replace(state, participants={pid: rows[pid]}), action, now_ms=at)
    except GroupError:
        return rows
    rows[pid] = mini.participants[pid]
    return rows


def _save_presence(gs: GroupSession, old: sm.GroupState, new: sm.GroupState) -> None:
    gs.version, gs.changed_ms = new.version, new.changed_ms
    gs.save(update_fields=["version", "changed_ms"])
    _update_memberships(gs, old, new)


