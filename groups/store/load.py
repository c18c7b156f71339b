"""Locking a group session and loading its state (``GroupState``) from the rows.

Every change of a group session, and every answer, starts with :func:`lock` (or
:func:`send_lock`, pipelined with the read of the answering rows). The rule "a run
that has ended no longer holds the group back" (``participant_of``) and the building
of a ``GroupState`` from the group session's row (``state_of``) are written once, here.
"""

from __future__ import annotations

import time
from types import MappingProxyType

from django.db import connection

from project.core.rows import Select, pipelined

from .. import state as sm
from ..flowcontrol import FLOW_MEMBER_FIELDS, flow_fields
from ..models import GroupSession, Membership
from ..sql import statement
from ..state import GroupError, GroupState, Participant


def now_ms() -> int:
    return int(time.time() * 1000)


def pk_of(group_session: GroupSession | int) -> int:
    return group_session.pk if isinstance(group_session, GroupSession) else int(group_session)


# OF t0: lock the group session only, not its experiment's row as well (which would
# serialise every group session of that experiment). FOR NO KEY UPDATE: the changes never
# touch the key, and this mode does not conflict with the KEY SHARE locks that rows
# referring to the group session take (Response rows of answers being stored), so an
# answer storing its rows does not wait for, or deadlock with, a change of its group
# session; each change still excludes every other (project/core/rows.py says why by hand).
LOCKED = Select(GroupSession, related=("experiment",), where='t0."id" = %s', lock="FOR NO KEY UPDATE OF t0")


def lock(group_session: GroupSession | int) -> GroupSession:
    """The group session's row, locked until the transaction ends. Raises ``not_found``."""
    try:
        return LOCKED.get(pk_of(group_session))
    except GroupSession.DoesNotExist:
        raise GroupError(f"No group session {pk_of(group_session)}.", code="not_found") from None


def send_lock(group_session_id: int):
    """Send :func:`lock`'s statement without waiting (``rows.pipelined``); return a
    function giving the locked row (raising ``not_found``)."""
    rows = LOCKED.send(group_session_id)

    def locked() -> GroupSession:
        found = rows()
        if not found:
            raise GroupError(f"No group session {group_session_id}.", code="not_found")
        return found[0]

    return locked


def participant_of(
    status: str, run_ended: bool, connections: int, form: str, responded_step, acked: int, **flow
) -> Participant:
    """A membership row as the state machine sees it: a run that has ended is
    ``finished`` (no longer holds the group back) unless it was removed. ``flow``: the
    flow-control fields read (``flowcontrol.FLOW_MEMBER_FIELDS``)."""
    if run_ended and status != sm.KICKED:
        status = sm.FINISHED
    return Participant(connections=connections, status=status, form=form, responded_step=responded_step,
                       acked_version=acked, **flow)  # fmt: skip


def state_of(gs: GroupSession, participants: dict[str, Participant] | None = None) -> GroupState:
    """The ``GroupState`` of the group session row ``gs`` with ``participants``."""
    return GroupState(
        phase=gs.phase, step=gs.step, version=gs.version, participant_version=gs.participant_version,
        changed_ms=gs.changed_ms, exit_loop_step=gs.exit_loop_step, participants=MappingProxyType(participants or {}),
        deadline_ms=gs.deadline_ms, timer_remaining_ms=gs.timer_remaining_ms, timed_out_step=gs.timed_out_step,
    )  # fmt: skip


def _members_sql(q) -> str:
    """The membership rows of one group session, in joining order, with whether each
    run has ended."""
    from runner.models import Session

    m, s = q(Membership._meta.db_table), q(Session._meta.db_table)
    col = {f.name: q(f.column) for f in Membership._meta.concrete_fields}
    ended = q(Session._meta.get_field("end").column)
    return (
        f"SELECT m.{col['pseudonym']}, m.{col['status']}, s.{ended} IS NOT NULL, "
        f"m.{col['connections']}, m.{col['form']}, m.{col['responded_step']}, m.{col['acked_version']}, "
        f"m.{col['session']}, {', '.join('m.' + col[name] for name in FLOW_MEMBER_FIELDS)}, "
        f"{_epoch_ms('m.' + col['joined'])}"
        f" FROM {m} m INNER JOIN {s} s ON s.{q(Session._meta.pk.column)} = m.{col['session']} "
        f"WHERE m.{col['group_session']} = %s ORDER BY m.{col['joined']}, m.{col['id']}"
    )


def _epoch_ms(column: str) -> str:
    """``column`` (a timestamp) as epoch milliseconds where the database can say so: PostgreSQL
    hands 500 rows' timestamps over as numbers in a third of the time psycopg takes to build
    them as datetimes (the advance of a group of 500 reads them all). Others: the timestamp."""
    if connection.vendor == "postgresql":
        return f"FLOOR(EXTRACT(EPOCH FROM {column}) * 1000)::bigint"
    return column


def load_state(group_session: GroupSession) -> tuple[GroupState, dict[str, int]]:
    """The pure state of ``group_session`` and each pseudonym's runner session id."""
    return _state_from(group_session, _send_members(group_session.pk)())


def lock_and_load(group_session: GroupSession | int) -> tuple[GroupSession, GroupState, dict[str, int]]:
    """:func:`lock` and :func:`load_state` in one round trip (pipelined, PostgreSQL): the
    rows are read after the lock is granted, in the same transaction, as when the two are
    sent one after the other. Every change of a group session waits for both under the
    lock; an advance at N=200 spent 1 ms in the lock's round trip alone."""
    return lock_load_and(group_session)[:3]


def lock_load_and(group_session: GroupSession | int, also=None):
    """:func:`lock_and_load` and, in the same round trip after them, the reads ``also(group
    session id)`` sends (it returns a function giving them, or None): ``(gs, state,
    session ids, what also's function gave, or None)``."""
    group_session_id = pk_of(group_session)
    with pipelined():
        locked, members = send_lock(group_session_id), _send_members(group_session_id)
        more = also(group_session_id) if also is not None else None
        gs, rows = locked(), members()
        more = more() if more is not None else None
    state, session_ids = _state_from(gs, rows)
    return gs, state, session_ids, more


def _send_members(group_session_id: int):
    """Send the read of a group session's membership rows; return a function giving them."""
    cursor = connection.cursor()
    cursor.execute(statement("members", _members_sql), [group_session_id])

    def rows() -> list:
        with cursor:
            return cursor.fetchall()

    return rows


def _state_from(group_session: GroupSession, rows) -> tuple[GroupState, dict[str, int]]:
    participants, session_ids = {}, {}
    for pseudonym, status, ended, connections, form, responded_step, acked_version, session_id, *flow in rows:
        participants[pseudonym] = participant_of(
            status, ended, connections, form, responded_step, acked_version, **flow_fields(flow)
        )
        session_ids[pseudonym] = session_id
    return state_of(group_session, participants), session_ids


def send_answering_members(group_session_id: int, keys: list[tuple[int, int]]):
    """Send the read of the memberships that are still those sessions' in that group
    session (one statement); return a function giving {(membership id, session id):
    (pseudonym, Participant)}. Written out: it runs under the group session's lock
    (project/core/rows.py)."""
    from runner.models import Session

    quote = connection.ops.quote_name
    ids = sorted({membership_id for membership_id, _ in keys})
    sql = (
        'SELECT m."id", m."session_id", m."pseudonym", m."status", s."end", m."connections", m."form",'
        ' m."responded_step", m."acked_version", m."flag"'
        f" FROM {quote(Membership._meta.db_table)} m INNER JOIN {quote(Session._meta.db_table)} s"
        f' ON s."id" = m."session_id" WHERE m."group_session_id" = %s AND m."id" IN ({", ".join(["%s"] * len(ids))})'
    )
    cursor = connection.cursor()
    cursor.execute(sql, [group_session_id, *ids])

    def found() -> dict:
        with cursor:
            return {
                (mid, sid): (
                    pseudonym,
                    participant_of(status, ended is not None, conns, form, responded, acked, flag=flag),
                )
                for mid, sid, pseudonym, status, ended, conns, form, responded, acked, flag in cursor.fetchall()
            }

    return found


def membership_of(session) -> Membership:
    """The membership of runner ``session``. Raises ``not_in_group``."""
    membership = Membership.objects.filter(session=session).first()
    if membership is None:
        raise GroupError("This run is not part of a group session.", code="not_in_group")
    return membership
