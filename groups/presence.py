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

from dataclasses import replace

from django.db import transaction

from realtime.broadcast import FLUSH_SECONDS, broadcast_state

from . import state as sm
from .models import GroupSession
from .selectors import load_state
from .services import _lock, _update_memberships, now_ms, publish_on_commit, update_members_from
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
    return update_members_from(
        group_session_id,
        (("p", "text"), ("a", "bigint")),
        [(str(p), int(v)) for p, v in acks.items()],
        "acked_version = v.a",
        where="AND v.a > acked_version AND v.a <= %s",
        params=(current_version,),
    )


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


