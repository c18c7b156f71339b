"""Presence and acknowledgements of participant sockets, written in batches.

A server process's hub (``realtime.broadcast.Hub``, through ``realtime.ports``)
collects what its sockets report for ``GROUP_PRESENCE_FLUSH_SECONDS`` and writes it
with one call per group session:

- ``record_acks``: only acknowledgements (what every participant sends after every
  state: 1000 of them after each advance of a group of 1000). One short transaction
  of three statements, no state loaded, no state machine run: an acknowledgement
  only ever raises a participant's ``acked_version`` to a version that was sent,
  which one ``UPDATE`` expresses exactly. It is a console-only change, and the
  console's snapshot is read once, a moment later, by the process's publisher thread
  (not in the database thread the next advance is waiting for).
- ``record_presence``: connection changes (and any acks with them) through the
  state machine, as one change: one lock, two queries for all the rows, one
  console-only version, published from the state in hand. Each process writes the
  number of sockets it holds (absolute) under its lease id in ``ProcessConnections``
  (whose rows add up to ``Membership.connections``), so that
- ``sweep_processes`` can take a dead process's share off (``realtime.leases``);
- ``record_reports``: the live page's onsets, locations and jsPsych errors, the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from django.conf import settings
from django.db import transaction

from realtime.ports import CONSOLE

from . import flowservices, live, store
from . import state as sm
from .models import GroupSession, ProcessConnections
from .state import GroupError

FLUSH_SECONDS = getattr(settings, "GROUP_PRESENCE_FLUSH_SECONDS", 0.15)


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
        gs = store.lock(group_session)
        if not store.raise_acks(gs.pk, gs.version, acks):
            return None
        gs.version, gs.changed_ms = gs.version + 1, store.now_ms()
        GroupSession.objects.filter(pk=gs.pk).update(version=gs.version, changed_ms=gs.changed_ms)
        store.publish_console(gs.pk, within=FLUSH_SECONDS)
        return gs.version


def record_presence(
    *,
    group_session: GroupSession | int,
    acks: dict | None = None,
    process: str = "",
    held: dict | None = None,
    retired: Iterable[str] = (),
) -> sm.GroupState | None:
    """Apply a batch of acknowledgements (pseudonym -> highest version received) and
    connection changes as ONE change: one lock, one read of the rows, one console-only
    version, one broadcast.

    Connections come as ``held`` (pseudonym -> how many sockets server process
    ``process`` holds now: absolute, so a write that is repeated or retried is right)
    and ``retired`` (processes whose connections are over: a dead process's, or this
    process's own earlier lease ids). What each process has counted is kept in
    ``ProcessConnections`` in the same transaction, so a dead process's share can be
    taken off later (``sweep_processes``).

    What the hub of each process writes every ``GROUP_PRESENCE_FLUSH_SECONDS``; who went
    offline may drop out (issue 20). What the state machine refuses (``unknown_participant``,
    ``kicked`` on connect, ``bad_version``) is skipped. Returns the new state, or None
    when nothing changed. Locks the group session; raises ``not_found``."""
    retired = tuple(p for p in retired if p and p != process)
    with transaction.atomic():
        gs, old, _ = store.lock_and_load(group_session)
        at, rows = store.now_ms(), dict(old.participants)
        if held or retired:
            rows = _count_with_consoles(gs, old, rows, at, process, held or {}, retired)
        for pid, version in (acks or {}).items():
            if version <= old.version:  # never more than what was sent before this batch
                rows = _one(old, rows, pid, sm.Ack(pid, version), at)
        if rows == dict(old.participants):
            return None
        new = replace(old, version=old.version + 1, participants=rows, changed_ms=at)
        store.save_console_change(gs, old, new)
        flowservices.presence_changed(gs, old, new)
        store.publish_on_commit(gs, new)
        return new


def record_presence_version(**batch) -> int | None:
    """``record_presence`` giving the new version (or None): what the hub needs."""
    new = record_presence(**batch)
    return None if new is None else new.version


def _connect(state: sm.GroupState, rows: dict, pid: str, delta: int, at: int) -> dict:
    """``delta`` sockets of ``pid`` opened (> 0) or closed (< 0), one by one through the
    state machine (a count never goes below zero; a kicked participant gains none)."""
    action = sm.Connect(pid) if delta > 0 else sm.Disconnect(pid)
    for _ in range(abs(delta)):
        rows = _one(state, rows, pid, action, at)
    return rows


def _count_with_consoles(gs, old: sm.GroupState, rows: dict, at: int, process: str, held: dict[str, int],
                         retired: tuple[str, ...]) -> dict:  # fmt: skip
    """``_count_process``; when it closed the last experimenter console (``CONSOLE`` in
    ``held``, or a dead process's), a full lobby that waited for it starts by itself."""
    consoles = (bool(retired) or CONSOLE in held) and flowservices.console_open(gs.pk)
    rows = _count_process(gs.pk, old, rows, at, process, held, retired)
    if consoles and not flowservices.console_open(gs.pk):
        flowservices.console_closed(gs, old, at)
    return rows


def _count_process(gs_id: int, old: sm.GroupState, rows: dict, at: int, process: str, held: dict[str, int],
                   retired: tuple[str, ...]) -> dict:  # fmt: skip
    """``rows`` with the ``retired`` processes' connections taken off and ``process``'s
    brought to ``held``; stores what each process now counts (``ProcessConnections``)."""
    counted = _counted(gs_id, (process, *retired))
    for (pid, owner), n in counted.items():
        if owner != process:
            rows = _connect(old, rows, pid, -n, at)
    ledger = {}
    for pid, n in held.items():
        had, n = counted.get((pid, process), 0), max(n, 0)
        if pid == CONSOLE:  # the experimenter's sockets: counted, no participant changes
            ledger.update({pid: n} if n != had else {})
            continue
        before = rows[pid].connections if pid in rows else 0
        rows = _connect(old, rows, pid, n - had, at)
        applied = (rows[pid].connections if pid in rows else 0) - before
        now_counted = n if n <= had else had + applied  # a kicked participant gains none
        if now_counted != had:
            ledger[pid] = now_counted
    _save_ledger(gs_id, process, ledger, retired if any(o != process for _, o in counted) else ())
    return rows


def _counted(group_session_id: int, processes: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """(pseudonym, process) -> connections that process counted, for ``processes``."""
    rows = ProcessConnections.objects.filter(group_session_id=group_session_id, process__in=processes)
    return {(p, owner): n for p, owner, n in rows.values_list("pseudonym", "process", "count")}


def _save_ledger(group_session_id: int, process: str, ledger: dict[str, int], retired: tuple[str, ...]) -> None:
    """Store what ``process`` now counts per pseudonym (rows at zero are deleted) and
    forget the ``retired`` processes' rows."""
    mine = ProcessConnections.objects.filter(group_session_id=group_session_id, process=process)
    if retired:
        ProcessConnections.objects.filter(group_session_id=group_session_id, process__in=retired).delete()
    if zeros := [pid for pid, n in ledger.items() if n == 0]:
        mine.filter(pseudonym__in=zeros).delete()
    if counts := [(pid, n) for pid, n in ledger.items() if n > 0]:
        ProcessConnections.objects.bulk_create(
            [ProcessConnections(group_session_id=group_session_id, pseudonym=p, process=process, count=n)
             for p, n in counts],
            update_conflicts=True,
            unique_fields=["group_session", "pseudonym", "process"],
            update_fields=["count"],
        )  # fmt: skip


def counting_processes(*, besides: Iterable[str] = ()) -> set[str]:
    """The server processes that have connections counted, other than ``besides``."""
    return set(
        ProcessConnections.objects.exclude(process__in=list(besides)).values_list("process", flat=True).distinct()
    )


def sweep_processes(*, dead: Iterable[str]) -> list[int]:
    """Take the connections of ``dead`` processes (lease expired) off every group session
    that counts some, one ``record_presence`` each (which publishes the corrected state to
    the console). Returns those group sessions' ids. Safe to run in several processes at
    once: the rows are read and deleted under each group session's lock."""
    dead = tuple(dead)
    ids = sorted(set(ProcessConnections.objects.filter(process__in=dead).values_list("group_session_id", flat=True)))
    for gs_id in ids:
        try:
            record_presence(group_session=gs_id, retired=dead)
        except GroupError:  # deleted meanwhile (its rows went with it)
            pass
    return ids


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


def record_reports(*, group_session: GroupSession | int, onsets: list[dict], locations: dict[str, str],
                   errors: list[dict]) -> int | None:  # fmt: skip
    """What a process's live pages reported for one group session (``realtime.live.Reports``),
    as ONE console-only change, like acknowledgements: locations (pseudonym -> the form on
    screen) through the state machine one participant at a time, onsets (``{participant,
    step, at, late_ms, ready_at}``, the first per participant and step kept) and jsPsych
    errors (``{participant, step, message}``: server log and step log; ``groups.live``).
    Locks the group session; returns the new version, or None when nothing changed."""
    with transaction.atomic():
        gs, old, _ = store.lock_and_load(group_session)
        at = store.now_ms()
        rows = dict(old.participants)
        for pid, form in locations.items():
            rows = _one(old, rows, pid, sm.Locate(pid, form), at)
        stored = live.store_onsets(gs, old, onsets)
        live.log_client_errors(gs, old, errors)
        if rows == dict(old.participants) and not stored and not errors:
            return None
        new = replace(old, version=old.version + 1, participants=rows, changed_ms=at)
        store.save_console_change(gs, old, new)  # a console-only change (participants see nothing new)
        store.publish_on_commit(gs, new)
        return new.version
