"""Answers to a lockstep step: one, or many of one group session stored together.

An answer is recorded in two halves, both inside the transaction that stores its
Response rows (the runner's ``submit_form`` for one answer, ``runner.batching`` for the
answers that arrived together):

- :func:`check_responses` locks the group session, reads the answering memberships and
  runs the state machine's ``Respond`` for each, in memory: it says which answers are
  refused (``GroupError``: the runner stores nothing of those) and changes nothing;
- :meth:`CheckedResponses.write` then writes the accepted ones (memberships and the
  group session in one statement, which also counts who is still answering), and
  :meth:`CheckedResponses.announce` runs ``on_response`` for each and
  ``on_all_responded`` once if nobody is left, saves the context the hooks wrote in the
  same transaction (the database is the context's record: an answer is stored with its
  hooks' effects or not at all, whether or not Redis answers), and asks for one console
  snapshot after the commit.

A batch of K answers costs the group session one lock, one read and one write instead
of K of each (bench/analysis.md, answers at once).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType

from django.db import connection, transaction

from project.core.rows import pipelined, update_from
from realtime.broadcast import ANSWER_FLUSH_SECONDS, broadcast_state

from . import flowservices, hooks
from . import state as sm
from .models import GroupSession, Membership
from .selectors import TrialView
from .services import _LOCKED, _membership, checkpoint_context, now_ms
from .state import GroupError


@dataclass(frozen=True)
class RecordedStep:
    """What the runner stores with each Response row of a group_trial answer."""

    group_session_id: int
    step: int
    shared_params: dict
    exit_loop: bool = False  # the experimenter exited the loop at this step: the answer leaves it


@dataclass(frozen=True)
class Answer:
    """One participant's answer to lockstep ``step`` (``view``: its unlocked
    ``selectors.trial_for``, whose ids are checked again under the lock)."""

    session: object
    step: int
    answers: dict
    membership_id: int
    group_session_id: int

    @classmethod
    def of(cls, *, session, step: int, answers: dict | None = None, view: TrialView | None = None) -> Answer:
        if view is None:
            membership = _membership(session)
            membership_id, group_session_id = membership.pk, membership.group_session_id
        else:
            membership_id, group_session_id = view.membership_id, view.group_session_id
        return cls(session, step, dict(answers or {}), membership_id, group_session_id)


@dataclass
class CheckedResponses:
    """The outcome of :func:`check_responses`: ``refusals[i]`` is the ``GroupError`` of
    answer ``i`` (None if accepted); :meth:`write` and then :meth:`announce` record the
    accepted ones (``runner.handlers.BatchStep``)."""

    gs: GroupSession
    items: list[Answer]
    refusals: list[GroupError | None]
    state: sm.GroupState
    #: accepted answers that change something: (index, pseudonym, membership id)
    changed: list[tuple[int, str, int]] = field(default_factory=list)
    all_responded: bool = False  # nobody else is still answering (set by write)

    def recorded(self) -> RecordedStep:
        gs = self.gs
        return RecordedStep(gs.pk, gs.step, dict(gs.shared_params or {}),
                            gs.exit_loop_step is not None and gs.exit_loop_step == gs.step)  # fmt: skip

    def write(self) -> None:
        """Write the accepted answers (inside the transaction, after the caller stored
        their rows): the memberships and the group session, and whether anyone is still
        answering. No hooks, so safe in ``rows.pipelined``."""
        if not self.changed:
            return  # repeats of answers already recorded: nothing changes
        gs, new = self.gs, self.state
        gs.version, gs.participant_version, gs.changed_ms = new.version, new.participant_version, new.changed_ms
        members = [(mid, new.participants[pid].status, new.participants[pid].responded_step)
                   for _, pid, mid in self.changed]  # fmt: skip
        # The last answer of the step? Counted under the lock, so of all the batches
        # racing for it exactly one sees nobody left (the others committed before it).
        self.all_responded = not _respond(gs, members, gs.step)

    def announce(self) -> None:
        """After :meth:`write`: the hooks (``on_all_responded`` sees the rows stored), the
        context checkpoint, the console's snapshot after the commit."""
        if not self.changed:
            return
        gs, new, all_responded = self.gs, self.state, self.all_responded
        # participants read from the database only if a hook asks; the context is the locked row's
        group = hooks.Group(gs, None, locked=True)
        for index, pid, _ in self.changed:
            item, mine = self.items[index], new.participants[pid]
            info = hooks.ParticipantInfo(pid, item.session.pk, mine.status, mine.responded_step, mine.connected)
            hooks.call_quietly("on_response", gs.experiment, group, info, dict(item.answers))
        if all_responded:  # after every on_response, which it should see
            hooks.call_quietly("on_all_responded", gs.experiment, group)
            flowservices.everyone_answered(gs)  # auto_advance: all_responded (issue 20)
        if group.context.dirty:  # in the answer's transaction: durable with it, Redis or not
            checkpoint_context(gs, group)
        # The console's count of answers: one snapshot per burst of answers (they come together).
        transaction.on_commit(partial(broadcast_state, gs.pk, within=ANSWER_FLUSH_SECONDS))


def check_responses(items: list[Answer]) -> CheckedResponses:
    """Lock the group session of ``items`` (all of one group session) and decide each
    answer under the lock, in order, changing nothing. Call it inside the transaction
    that will store the accepted answers' rows, then :meth:`CheckedResponses.write` and
    :meth:`CheckedResponses.announce`.
    Refusal codes: ``stale_step`` (not the current step), ``not_started``, ``ended``,
    ``kicked``, ``not_in_group``. A repeated answer to a step is accepted (idempotent)."""
    group_session_id = items[0].group_session_id
    if any(item.group_session_id != group_session_id for item in items):
        raise ValueError("check_responses: answers of more than one group session")
    # Only the answering participants' rows: every change of a membership is made under
    # the group session's lock, and PostgreSQL runs the read after the lock is granted
    # (the two travel together, one round trip), so what is read is what the lock protects.
    with pipelined():
        locked = _locked(group_session_id)
        members = _answering_members(group_session_id, [(item.membership_id, item.session.pk) for item in items])
        gs, rows = locked(), members()
    state = sm.GroupState(
        phase=gs.phase, step=gs.step, version=gs.version, participant_version=gs.participant_version,
        changed_ms=gs.changed_ms, exit_loop_step=gs.exit_loop_step, participants=MappingProxyType({}),
    )  # fmt: skip
    checked = CheckedResponses(gs, items, [None] * len(items), state)
    now, answered = now_ms(), {}
    for index, item in enumerate(items):
        row = rows.get((item.membership_id, item.session.pk))
        if row is None:
            checked.refusals[index] = GroupError("This run is not part of a group session.", code="not_in_group")
            continue
        pseudonym, me = row
        if me.flag == "skipped" and me.responded_step == item.step:  # closed without an answer (issue 20)
            checked.refusals[index] = GroupError("This step was closed for you; it stores nothing.", code="skipped")
            continue
        # Each answer on a state of its own participant only (the versions carried on):
        # a state of every participant so far would be copied once per answer (K squared).
        one = replace(state, participants=MappingProxyType({pseudonym: answered.get(pseudonym, me)}))
        try:
            new, _ = sm.transition(one, sm.Respond(pseudonym, item.step), now_ms=now)
        except GroupError as exc:
            checked.refusals[index] = exc
            continue
        if new is not one:
            answered[pseudonym] = new.participants[pseudonym]
            state = new
            checked.changed.append((index, pseudonym, item.membership_id))
    checked.state = replace(state, participants=MappingProxyType(answered))
    return checked


def record_response(*, session, step: int, answers: dict | None = None, view: TrialView | None = None) -> RecordedStep:
    """Accept ``session``'s answer to lockstep ``step``; run ``on_response`` (and
    ``on_all_responded`` for the last one); publish. One answer of
    :func:`check_responses`, ``write`` and ``announce``.

    Call it INSIDE the transaction that stores the Response rows, as late as possible:
    the group session stays locked until that transaction commits, and a refusal
    (raised) means nothing must be stored. Idempotent for a repeated step.
    Raises ``GroupError`` (the codes of :func:`check_responses`).
    """
    item = Answer.of(session=session, step=step, answers=answers, view=view)
    # Inside the caller's transaction no savepoint of its own (two statements fewer for
    # every answer): a refusal raises before anything is written here.
    with transaction.atomic() if not connection.in_atomic_block else nullcontext():
        checked = check_responses([item])
        if checked.refusals[0] is not None:
            raise checked.refusals[0]
        checked.write()
        checked.announce()
        return checked.recorded()


def _locked(group_session_id: int):
    """Send the group session's lock (``services._lock``); return a function giving the
    locked row (raising ``GroupError`` ``not_found``)."""
    rows = _LOCKED.send(group_session_id)

    def locked() -> GroupSession:
        found = rows()
        if not found:
            raise GroupError(f"No group session {group_session_id}.", code="not_found")
        return found[0]

    return locked


def _answering_members(group_session_id: int, keys: list[tuple[int, int]]):
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
        members = {}
        with cursor:
            for mid, sid, pseudonym, status, ended, connections, form, responded_step, acked, flag in cursor.fetchall():
                if ended is not None and status != Membership.Status.KICKED:
                    status = Membership.Status.FINISHED  # as selectors.load_state derives it
                member = sm.Participant(connections, status, form, responded_step, acked, flag=flag)
                members[(mid, sid)] = (pseudonym, member)
        return members

    return found


def _respond(gs: GroupSession, members: list[tuple[int, str, int | None]], step: int) -> bool:
    """Write the answering memberships' new (status, responded_step) and ``gs``'s new
    version, and say whether someone in the group (not removed, not finished, run not
    over) still has not answered ``step``: one round trip to the database on PostgreSQL,
    made under the group session's lock (each statement more there is a wait for all the
    others). The memberships written here are left out of the count, so the statement's
    own updates not being visible to its count does not matter (still_answering_query)."""
    import json

    ids = [mid for mid, _, _ in members]
    count, params = still_answering_query(gs.pk, step, exclude=ids)
    if connection.vendor != "postgresql":  # SQLite has no UPDATE in WITH: three statements
        table = connection.ops.quote_name(Membership._meta.db_table)
        update_from(Membership._meta.db_table, (("i", "bigint"), ("s", "text"), ("r", "int")), members,
                    "status = v.s, responded_step = v.r", f"{table}.id = v.i")  # fmt: skip
        gs.save(update_fields=["version", "participant_version", "changed_ms"])
        with connection.cursor() as cursor:
            cursor.execute(count, params)
            return cursor.fetchone() is not None
    quote = connection.ops.quote_name
    table = quote(Membership._meta.db_table)
    sql = (
        f"WITH m AS (UPDATE {table} SET status = v.s, responded_step = v.r"
        f" FROM jsonb_to_recordset(%s::jsonb) AS v(i bigint, s text, r int) WHERE {table}.id = v.i),"
        f" g AS (UPDATE {quote(GroupSession._meta.db_table)} SET version = %s, participant_version = %s,"
        f" changed_ms = %s WHERE id = %s) SELECT ({count})"
    )
    rows = json.dumps([{"i": mid, "s": status, "r": responded_step} for mid, status, responded_step in members])
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows, gs.version, gs.participant_version, gs.changed_ms, gs.pk, *params])
        return cursor.fetchone()[0] is not None


def still_answering_query(group_session_id: int, step: int, *, exclude: int | list[int]) -> tuple[str, list]:
    """Someone in the group session still has to answer ``step`` (a row, else none);
    memberships ``exclude`` (those answering now) left out. Tests read its plan.

    One statement whatever the group's size: this group's memberships (by index), each
    one's run checked by primary key, stopping at the first found (a list of the group's
    run ids sent back to the database made N answers cost N squared). The run is
    checked in a scalar subquery, which PostgreSQL never turns into a join: as an
    ``EXISTS``, stale statistics made it scan every run ever stored (46 ms instead of
    0.3 ms with 20,000 runs, under the lock, for every answer)."""
    from runner.models import Session

    excluded = [exclude] if isinstance(exclude, int) else list(exclude) or [0]
    quote = connection.ops.quote_name
    membership, run = quote(Membership._meta.db_table), quote(Session._meta.db_table)
    sql = (
        f"SELECT 1 FROM {membership} m WHERE m.group_session_id = %s"
        f" AND m.id NOT IN ({', '.join(['%s'] * len(excluded))})"
        " AND m.status NOT IN (%s, %s, %s, %s) AND (m.responded_step IS NULL OR m.responded_step <> %s)"
        " AND (m.dropped_at_ms IS NULL OR m.bot)"  # a dropout without a bot holds nobody back (issue 20)
        f' AND (SELECT s."end" FROM {run} s WHERE s.id = m.session_id) IS NULL LIMIT 1'
    )
    outside = (
        Membership.Status.KICKED,
        Membership.Status.FINISHED,
        Membership.Status.STANDBY,
        Membership.Status.RELEASED,
    )
    return sql, [group_session_id, *excluded, *outside, step]
