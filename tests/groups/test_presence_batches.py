"""Batched presence writes (groups.presence): the ack-only batch is one UPDATE that
allows exactly what the state machine's Ack allows, and both batches publish."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groups import presence, selectors, services, store
from groups.models import GroupSession, Membership

WRITE = re.compile(r"\s*(WITH\b.*\)\s*)?UPDATE ", re.I | re.S)  # (SQLite's update_from opens with WITH)

pytestmark = pytest.mark.django_db


def _rows(gs):
    return dict(Membership.objects.filter(group_session=gs).values_list("pseudonym", "acked_version"))


def _versions(gs):
    gs = GroupSession.objects.get(pk=gs.pk)
    return gs.version, gs.participant_version


def test_acks_raise_acked_versions_as_one_console_only_change(gs, join, staff):
    (_, m1), (_, m2) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    version, participant_version = _versions(gs)
    new = presence.record_acks(group_session=gs.pk, acks={m1.pseudonym: version, m2.pseudonym: version - 1})
    assert new == version + 1
    assert _versions(gs) == (version + 1, participant_version)  # participants are not asked to re-ack
    assert _rows(gs) == {m1.pseudonym: version, m2.pseudonym: version - 1}
    snap = selectors.snapshot(gs.pk)
    behind = {p["id"]: p["behind"] for p in snap["participants"]}
    assert behind == {m1.pseudonym: False, m2.pseudonym: version - 1 < participant_version}


def test_acks_that_the_state_machine_refuses_change_nothing(gs, join, staff):
    (_, m1), (_, m2) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    acked = _versions(gs)[0] - 1
    presence.record_acks(group_session=gs, acks={m1.pseudonym: acked})
    version, _ = _versions(gs)
    before = _rows(gs)
    for acks in (
        {"PNOBODY": version},  # unknown participant
        {m2.pseudonym: version + 5},  # a version never sent
        {m1.pseudonym: acked},  # not above what it acknowledged
        {m1.pseudonym: 0, m2.pseudonym: -3},
        {},
    ):
        assert presence.record_acks(group_session=gs, acks=acks) is None
        assert _versions(gs)[0] == version and _rows(gs) == before


def test_ack_batch_matches_the_state_machine_batch(gs, join, staff, experiment):
    """The same acks through record_acks (one UPDATE) and through record_presence (the
    state machine per participant) leave the same rows."""
    members = [join()[1] for _ in range(4)]
    other = services.start_group_session(experiment=experiment, size=4, experimenter=staff)
    from runner.models import Ticket
    from tests.factories import SessionFactory

    ticket = Ticket.objects.get(pk=other.ticket_id)
    twins = [services.attach_participant(session=SessionFactory(experiment=experiment, ticket=ticket), ticket=ticket)
             for _ in range(4)]  # fmt: skip
    for g in (gs, other):
        services.group_session_start(group_session=g, by=staff)
        services.group_session_advance(group_session=g, step=0, by=staff)
    v1, v2 = _versions(gs)[0], _versions(other)[0]
    assert v1 == v2
    pattern = [v1, v1 - 1, v1 + 3, 0]  # current, older, never sent, nothing
    presence.record_acks(group_session=gs, acks={m.pseudonym: a for m, a in zip(members, pattern, strict=True)})
    presence.record_presence(group_session=other, acks={m.pseudonym: a for m, a in zip(twins, pattern, strict=True)})
    assert [_rows(gs)[m.pseudonym] for m in members] == [_rows(other)[m.pseudonym] for m in twins]
    assert _versions(gs) == _versions(other)


def test_a_kicked_participant_may_still_acknowledge(gs, join, staff):
    (_, m1), _ = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_kick(group_session=gs, participant=m1.pseudonym, by=staff)
    version, _ = _versions(gs)
    assert presence.record_acks(group_session=gs, acks={m1.pseudonym: version}) == version + 1


def test_unknown_group_session_is_not_found(db):
    from groups.state import GroupError

    with pytest.raises(GroupError) as exc:
        presence.record_acks(group_session=987654, acks={"P1": 1})
    assert exc.value.code == "not_found"


def test_batches_publish_after_commit(gs, join, staff, django_capture_on_commit_callbacks, monkeypatch):
    """record_presence publishes the state it committed; record_acks asks the publisher
    thread for one console read (not the database thread the next advance needs)."""
    from realtime import frames, publish

    (_, m1), _ = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    published, requested = [], []
    monkeypatch.setattr(publish, "publish_text", lambda gs_id, body: published.append((gs_id, body)))
    monkeypatch.setattr(publish._publisher, "request", lambda gs_id, delay=0.0: requested.append((gs_id, delay)))
    with django_capture_on_commit_callbacks(execute=True):
        new = presence.record_presence(group_session=gs, process="p1", held={m1.pseudonym: 1})
    assert [gs_id for gs_id, _ in published] == [gs.pk, gs.pk]  # the participants' part, then the console's
    sent = frames.Frames.decode(gs.pk, published[0][1])
    assert sent.version == new.version and sent.console_pending
    fresh = selectors.snapshot(gs.pk)  # what a fresh read gives
    assert sent.participant(m1.pseudonym) == frames.dumps(store.participant_view(fresh, m1.pseudonym))
    assert frames.decode_console(published[1][1]) == (new.version, frames.dumps(fresh))
    with django_capture_on_commit_callbacks(execute=True):
        presence.record_acks(group_session=gs, acks={m1.pseudonym: new.version})
    assert requested == [(gs.pk, presence.FLUSH_SECONDS)] and len(published) == 2


def test_pages_arriving_on_the_waiting_screen_publish_one_snapshot_per_burst(
    gs, join, staff, django_capture_on_commit_callbacks, monkeypatch
):
    """``ready`` before the start only moves a count ("1 of 2 ready"): each asks the
    publisher thread for one coalesced read (a group of 500 gathering sent 500 frames to
    each of its pages); the start itself is published at once, from the state in hand."""
    from realtime import publish

    (_, m1), (_, m2) = join(), join()
    published, requested = [], []
    monkeypatch.setattr(publish, "publish_text", lambda gs_id, body: published.append(gs_id))
    monkeypatch.setattr(publish._publisher, "request", lambda gs_id, delay=0.0: requested.append((gs_id, delay)))
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
        steps = {m1.pseudonym: 0, m2.pseudonym: 0, "PNOBODY": 0}  # an unknown one is skipped
        assert services.participants_ready(group_session=gs.pk, steps=steps) == 2
    assert published == [] and requested == [(gs.pk, services.READY_FLUSH_SECONDS)]  # one for the batch
    writes = [q["sql"] for q in queries.captured_queries if WRITE.match(q["sql"])]
    assert len(writes) == 2, writes  # the two rows in one statement, the group session's row in one
    assert selectors.snapshot(gs.pk)["ready"] == 2  # both stored: the coalesced read shows them
    with django_capture_on_commit_callbacks(execute=True):  # again: nothing changes
        assert services.participants_ready(group_session=gs.pk, steps={m1.pseudonym: 0, m2.pseudonym: 3}) == 0
    with django_capture_on_commit_callbacks(execute=True):
        services.group_session_start(group_session=gs, by=staff)
    assert published == [gs.pk, gs.pk]  # a step change: at once (the participants' part, then the console's)


@pytest.mark.parametrize(
    ("phase", "current", "step", "code"),
    [("running", 3, 2, "stale_step"), ("waiting", 0, 1, "stale_step"), ("ended", 3, 3, "ended"),
     ("aborted", 0, 0, "ended"), ("running", 3, 3, None), ("paused", 1, 1, None)],
)  # fmt: skip
def test_a_sockets_quick_check_of_ready_refuses_as_the_state_machine_does(phase, current, step, code):
    """``services.check_ready`` (the sockets' port) and ``Ready`` through the state machine, on
    the same phase and step, refuse with the same code and message, or both let it through."""
    from groups import state as sm

    state = sm.GroupState(phase=phase, step=current, version=1, participant_version=1, changed_ms=0,
                          participants={"P1": sm.Participant(status=sm.ANSWERING)})  # fmt: skip
    outcomes = []
    for attempt in (lambda: services.check_ready(phase, current, step),
                    lambda: sm.transition(state, sm.Ready("P1", step), now_ms=1)):  # fmt: skip
        try:
            attempt()
            outcomes.append(None)
        except sm.GroupError as exc:
            outcomes.append((exc.code, str(exc)))
    assert outcomes[0] == outcomes[1] and (outcomes[0] or (None,))[0] == code
