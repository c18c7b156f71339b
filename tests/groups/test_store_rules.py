"""The store's batched statements give what the state machine gives (issue 15).

Two hot paths change many membership rows with one statement instead of a transition
per row: ``store.raise_acks`` (the ``Ack`` rule) and ``store.save_answers`` with
``store.still_answering_query`` (``Respond`` and ``all_responded``). For random
states written to the database, each batched path must leave the rows, and say
"everyone answered", exactly as ``state.transition`` on the loaded state does."""

from __future__ import annotations

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
