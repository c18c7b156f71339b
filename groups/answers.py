"""Answers to a lockstep step: one, or many of one group session stored together.

An answer is recorded in two halves, both inside the transaction that stores its
Response rows (the runner's ``submit_form`` for one answer, ``runner.batching`` for the
answers that arrived together):

- :func:`check_responses` locks the group session, reads the answering memberships and
  runs the state machine's ``Respond`` for each, in memory: it says which answers are
  refused (``GroupError``: the runner stores nothing of those) and changes nothing;
- :meth:`CheckedResponses.write` then writes the accepted ones (memberships and the
  group session in one statement, which also counts who is still answering:
  ``store.save_answers``), and
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
from types import MappingProxyType

from django.conf import settings
from django.db import connection, transaction

from project.core.rows import pipelined

from . import flowservices, hooks, store
from . import state as sm
from .models import GroupSession
from .selectors import TrialView
from .state import GroupError

ANSWER_FLUSH_SECONDS = getattr(settings, "GROUP_ANSWER_FLUSH_SECONDS", 0.1)


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
            membership = store.membership_of(session)
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
    #: an accepted answer closes someone's step (not only late answers after a timeout,
    #: whose step the timer closed: the group was complete without them)
    first_answers: bool = False

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
        members = [(mid, new.participants[pid].status, new.participants[pid].responded_step, new.participants[pid].flag)
                   for _, pid, mid in self.changed]  # fmt: skip
        # The last answer of the step? Counted under the lock, so of all the batches
        # racing for it exactly one sees nobody left (the others committed before it).
        still_answering = store.save_answers(gs, members, gs.step)
        self.all_responded = self.first_answers and not still_answering

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
            store.checkpoint_context(gs, group)
        # The console's count of answers: one snapshot per burst of answers (they come together).
        store.publish_console(gs.pk, within=ANSWER_FLUSH_SECONDS)


def check_responses(items: list[Answer]) -> CheckedResponses:
    """Lock the group session of ``items`` (all of one group session) and decide each
    answer under the lock, in order, changing nothing. Call it inside the transaction
    that will store the accepted answers' rows, then :meth:`CheckedResponses.write` and
    :meth:`CheckedResponses.announce`.
    Refusal codes: ``stale_step`` (not the current step), ``not_started``, ``ended``,
    ``kicked``, ``not_in_group``, ``already_answered`` (a second answer to the step: the
    runner's visit nonce makes a repeated POST of one visit a duplicate before this, so
    this is another visit; only the page's answer after a ``submit`` timeout is taken,
    once), ``skipped`` (the step was closed for them)."""
    group_session_id = items[0].group_session_id
    if any(item.group_session_id != group_session_id for item in items):
        raise ValueError("check_responses: answers of more than one group session")
    # Only the answering participants' rows: every change of a membership is made under
    # the group session's lock, and PostgreSQL runs the read after the lock is granted
    # (the two travel together, one round trip), so what is read is what the lock protects.
    with pipelined():
        locked = store.send_lock(group_session_id)
        keys = [(item.membership_id, item.session.pk) for item in items]
        members = store.send_answering_members(group_session_id, keys)
        gs, rows = locked(), members()
    return _decide(CheckedResponses(gs, items, [None] * len(items), store.state_of(gs)), rows)


def _decide(checked: CheckedResponses, rows: dict) -> CheckedResponses:
    """Run ``Respond`` for each answer of ``checked`` on the rows read under the lock."""
    state, now, answered = checked.state, store.now_ms(), {}
    for index, item in enumerate(checked.items):
        row = rows.get((item.membership_id, item.session.pk))
        if row is None:
            checked.refusals[index] = GroupError("This run is not part of a group session.", code="not_in_group")
            continue
        pseudonym, me = row
        # Each answer on a state of its own participant only (the versions carried on):
        # a state of every participant so far would be copied once per answer (K squared).
        one = replace(state, participants=MappingProxyType({pseudonym: answered.get(pseudonym, me)}))
        try:
            new, _ = sm.transition(one, sm.Respond(pseudonym, item.step), now_ms=now)
        except GroupError as exc:
            checked.refusals[index] = exc
            continue
        if new is not one:
            checked.first_answers |= one.participants[pseudonym].responded_step != item.step  # not a late one
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
    (raised) means nothing must be stored.
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
