"""The store's batched statements give what the state machine gives (issue 15).

Two hot paths change many membership rows with one statement instead of a transition
per row: ``store.raise_acks`` (the ``Ack`` rule) and ``store.save_answers`` with
``store.still_answering_query`` (``Respond`` and ``all_responded``). For random
states written to the database, each batched path must leave the rows, and say
"everyone answered", exactly as ``state.transition`` on the loaded state does."""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import MappingProxyType

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from groups import state as sm
from groups import store
from groups.models import GroupSession, Membership
from runner.models import Session

SIZE = 5
STATUSES = [sm.JOINED, sm.READY, sm.ANSWERING, sm.RESPONDED, sm.FINISHED, sm.KICKED]
RULES = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

row = st.fixed_dictionaries(
    {
        "status": st.sampled_from(STATUSES),
        "responded_step": st.one_of(st.none(), st.just("current"), st.integers(0, 3)),  # "current": the step
        "acked_version": st.integers(0, 6),
        "ended": st.booleans(),
    }
)
world = st.fixed_dictionaries(
    {"step": st.integers(0, 3), "version": st.integers(6, 9), "rows": st.lists(row, min_size=SIZE, max_size=SIZE)}
)


@pytest.fixture
def members(gs, join):
    """``SIZE`` memberships of ``gs`` (pseudonym, membership id, session id), in joining order."""
    joined = [join()[1] for _ in range(SIZE)]
    return gs, [(m.pseudonym, m.pk, m.session_id) for m in joined]


def _write(gs: GroupSession, members, case: dict) -> sm.GroupState:
    """Put ``case`` into the rows; return the state the store loads from them."""
    GroupSession.objects.filter(pk=gs.pk).update(phase=sm.RUNNING, step=case["step"], version=case["version"],
                                                 participant_version=case["version"])  # fmt: skip
    for (_, membership_id, session_id), r in zip(members, case["rows"], strict=True):
        responded = case["step"] if r["responded_step"] == "current" else r["responded_step"]
        Membership.objects.filter(pk=membership_id).update(
            status=r["status"], responded_step=responded, acked_version=r["acked_version"]
        )
        Session.objects.filter(pk=session_id).update(end=timezone.now() if r["ended"] else None)
    gs.refresh_from_db()
    return store.load_state(gs)[0]


def _rows(gs) -> dict[str, tuple]:
    return {p: (s, r, a) for p, s, r, a in
            Membership.objects.filter(group_session=gs).values_list("pseudonym", "status", "responded_step",
                                                                    "acked_version")}  # fmt: skip


@RULES
@given(case=world, acks=st.dictionaries(st.integers(0, SIZE), st.integers(-1, 11), max_size=SIZE + 1))
def test_raise_acks_is_the_ack_transition(members, case, acks):
    gs, ms = members
    state = _write(gs, ms, case)
    by_pseudonym = {(ms[i][0] if i < SIZE else "PUNKNOWN"): v for i, v in acks.items()}
    expected = dict(state.participants)
    for pid, version in by_pseudonym.items():  # each against the state the batch was sent (record_presence's way)
        try:
            expected[pid] = sm.transition(state, sm.Ack(pid, version), now_ms=1)[0].participants[pid]
        except sm.GroupError:
            pass  # refused: the batch skips it too
    with transaction.atomic():
        changed = store.raise_acks(gs.pk, state.version, by_pseudonym)
    after = store.load_state(gs)[0]
    assert {p: q.acked_version for p, q in after.participants.items()} == {
        p: q.acked_version for p, q in expected.items()
    }
    assert changed == sum(expected[p] != state.participants[p] for p in state.participants)


@RULES
@given(case=world, who=st.integers(0, SIZE - 1))
def test_save_answers_says_all_responded_as_the_respond_transition_does(members, case, who):
    gs, ms = members
    state = _write(gs, ms, case)
    pseudonym, membership_id, _ = ms[who]
    try:
        new, events = sm.transition(state, sm.Respond(pseudonym, state.step), now_ms=1)
    except sm.GroupError:
        return  # refused (kicked, or answered already): the answer is never written
    mine = new.participants[pseudonym]
    gs.version, gs.participant_version, gs.changed_ms = new.version, new.participant_version, new.changed_ms
    with transaction.atomic():
        still = store.save_answers(gs, [(membership_id, mine.status, mine.responded_step, mine.flag)], state.step)
    event(f"all responded: {new.all_responded}")  # both outcomes are drawn (--hypothesis-show-statistics)
    assert (not still) == new.all_responded == ("all_responded" in {e.kind for e in events})
    assert _rows(gs)[pseudonym][:2] == (mine.status, mine.responded_step)


change = st.one_of(  # a few changes, so that rows change alike (the advance's way) and not
    st.none(),
    st.just({"status": sm.READY, "flag": ""}),
    st.fixed_dictionaries(
        {"status": st.sampled_from(STATUSES), "responded_step": st.one_of(st.none(), st.integers(0, 3))}
    ),
    st.fixed_dictionaries({"acked_version": st.integers(0, 9), "flag": st.sampled_from(["", "timed_out", "skipped"])}),
)


@RULES
@given(case=world, changes=st.lists(change, min_size=SIZE, max_size=SIZE), alike_from=st.integers(1, 3))
def test_save_members_loads_as_writing_every_changed_row_whole(members, case, changes, alike_from, monkeypatch):
    """Rows changed alike (at least ``SAME_CHANGE_ROWS``: one plain UPDATE of the changed
    columns) load back as the same rows written whole, each with every column (the join
    of ``update_from``) do."""
    save = importlib.import_module("groups.store.save")  # (groups.store.save is also the function)
    monkeypatch.setattr(save, "SAME_CHANGE_ROWS", alike_from)
    gs, ms = members
    old = _write(gs, ms, case)
    rows = dict(old.participants)
    for (pseudonym, _, _), c in zip(ms, changes, strict=True):
        if c:
            rows[pseudonym] = replace(rows[pseudonym], **c)
    new = replace(old, participants=MappingProxyType(rows))
    loaded = []
    for write in (save.save_members, _whole):
        with transaction.atomic():
            write(gs, old, new)
            loaded.append(store.load_state(gs)[0].participants)
            transaction.set_rollback(True)
    assert loaded[0] == loaded[1]


def _whole(gs, old, new) -> None:
    save = importlib.import_module("groups.store.save")
    save._update_rows(gs, {p: q for p, q in new.participants.items() if q != old.participants.get(p)})


def test_an_advance_writes_the_rows_that_answered_in_one_statement(members, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    save = importlib.import_module("groups.store.save")  # (groups.store.save is also the function)

    monkeypatch.setattr(save, "SAME_CHANGE_ROWS", 3)
    gs, ms = members
    case = {"step": 1, "version": 7, "rows": [{"status": sm.RESPONDED, "responded_step": "current", "acked_version": 7,
                                                "ended": False}] * SIZE}  # fmt: skip
    old = _write(gs, ms, case)
    new, _ = sm.transition(old, sm.Advance(1), now_ms=1)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        save.save_members(gs, old, new)
    assert len(queries.captured_queries) == 1
    assert {p: s for p, (s, _, _) in _rows(gs).items()} == {p: sm.READY for p, _, _ in ms}
