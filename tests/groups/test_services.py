"""Group services: creation, attach, controls, responses, hooks, context, step log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from exports import pseudonyms
from groups import answers, presence, selectors, services, store
from groups.context import get_store
from groups.models import GroupSession, Membership, StepLog
from groups.state import GroupError
from runner.models import Ticket
from tests.factories import ExperimentFactory, SessionFactory

pytestmark = pytest.mark.django_db


def codes_of(gs):
    return gs.participant_code, gs.experimenter_code


def test_start_group_session_creates_ticket_codes_and_attaches(gs, staff):
    assert gs.ticket.type == Ticket.Type.GROUP
    assert gs.ticket.expires == gs.expires
    assert gs.expires > timezone.now() + timedelta(hours=settings.GROUP_SESSION_HOURS - 1)
    assert gs.group.name == "lab A" and gs.expected_size == 2
    p, e = codes_of(gs)
    assert p != e and len(p) == len(e) == settings.GROUP_CODE_LENGTH
    assert set(p + e) <= set(settings.GROUP_CODE_ALPHABET)
    assert list(gs.experimenters.all()) == [staff]
    assert (gs.phase, gs.step) == ("waiting", 0)


def test_start_group_session_refuses_solo_experiment(db):
    with pytest.raises(GroupError) as info:
        services.start_group_session(experiment=ExperimentFactory(is_group=False))
    assert info.value.code == "not_group"


def test_attach_participant_is_idempotent_and_runs_on_join(gs, join, flow):
    session, membership = join()
    key = pseudonyms.subject_key(session.subject_id, session.pk)
    full = pseudonyms.pseudonym(key, pseudonyms.scope_for(gs.experiment))
    assert len(membership.pseudonym) == 7 and full.startswith(membership.pseudonym)  # the export pseudonym's start
    again = services.attach_participant(session=session, ticket=gs.ticket)
    assert again.pk == membership.pk
    assert Membership.objects.filter(group_session=gs).count() == 1
    assert flow.CALLS == [("on_join", gs.pk, membership.pseudonym)]
    assert selectors.snapshot(gs.pk)["context"] == {f"joined_{membership.pseudonym}": True}


def test_attach_refusals(gs, other_ticket):
    session = SessionFactory(experiment=gs.experiment)
    with pytest.raises(GroupError) as info:
        services.attach_participant(session=session, ticket=other_ticket)
    assert info.value.code == "not_found"
    stranger = SessionFactory()
    with pytest.raises(GroupError) as info:
        services.attach_participant(session=stranger, ticket=gs.ticket)
    assert info.value.code == "wrong_experiment"
    GroupSession.objects.filter(pk=gs.pk).update(expires=timezone.now() - timedelta(seconds=1))
    with pytest.raises(GroupError) as info:
        services.attach_participant(session=session, ticket=gs.ticket)
    assert info.value.code == "expired"
    assert not Membership.objects.exists()


def test_attach_after_end_refused(gs, join, staff):
    join()
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_end(group_session=gs, by=staff)
    with pytest.raises(GroupError) as info:
        join()
    assert info.value.code == "ended"
    assert Membership.objects.count() == 1


def test_full_lockstep_round(gs, join, staff, flow):
    (s1, _m1), (s2, _m2) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    gs.refresh_from_db()
    assert gs.phase == "running" and gs.started is not None
    assert gs.shared_params == {"color": "red", "step": 0}
    rec = answers.record_response(session=s1, step=0, answers={"rating": 3})
    assert rec.shared_params == {"color": "red", "step": 0} and rec.step == 0
    with pytest.raises(GroupError) as info:  # a second answer (another visit: the runner's nonce stops a repeat)
        answers.record_response(session=s1, step=0, answers={"rating": 3})
    assert info.value.code == "already_answered"
    answers.record_response(session=s2, step=0, answers={"rating": 5})
    assert [c[0] for c in flow.CALLS].count("on_response") == 2
    assert ("on_all_responded", gs.pk, 0, 0) in flow.CALLS
    assert selectors.snapshot(gs.pk)["all_responded"] is True
    services.group_session_advance(group_session=gs, step=0, by=staff)
    gs.refresh_from_db()
    assert gs.step == 1 and gs.shared_params == {"color": "green", "step": 1}
    with pytest.raises(GroupError) as info:
        answers.record_response(session=s1, step=0)
    assert info.value.code == "stale_step"
    log = list(StepLog.objects.filter(group_session=gs).values_list("action", "step", "shared_params"))
    assert log == [("started", 0, {"color": "red", "step": 0}), ("advanced", 1, {"color": "green", "step": 1})]
    assert StepLog.objects.filter(by=staff).count() == 2


def test_stale_advance_changes_nothing(gs, join, staff):
    join()
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_advance(group_session=gs, step=0, by=staff)
    before = selectors.snapshot(gs.pk)
    with pytest.raises(GroupError) as info:
        services.group_session_advance(group_session=gs, step=0, by=staff)
    assert info.value.code == "stale_step"
    assert selectors.snapshot(gs.pk) == before
    assert StepLog.objects.filter(action="advanced").count() == 1


def test_failing_on_advance_refuses_the_step(gs, join, staff, flow):
    join()
    services.group_session_start(group_session=gs, by=staff)
    flow.FAIL_ADVANCE["on"] = True
    with pytest.raises(GroupError) as info:
        services.group_session_advance(group_session=gs, step=0, by=staff)
    assert info.value.code == "hook_failed"
    gs.refresh_from_db()
    assert gs.step == 0 and gs.version == store.load_state(gs)[0].version


def test_pause_resume_exit_loop_end(gs, join, staff, flow):
    join()
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_pause(group_session=gs, by=staff)
    with pytest.raises(GroupError) as info:
        services.group_session_advance(group_session=gs, step=0, by=staff)
    assert info.value.code == "not_running"
    services.group_session_resume(group_session=gs, by=staff)
    services.group_session_exit_loop(group_session=gs, by=staff)
    assert selectors.snapshot(gs.pk)["exit_loop"] is True
    services.group_session_end(group_session=gs, by=staff)
    gs.refresh_from_db()
    assert gs.phase == "ended" and gs.ended is not None
    assert flow.CALLS[-1] == ("on_end", gs.pk, "ended")
    actions = list(StepLog.objects.filter(group_session=gs).values_list("action", flat=True))
    assert actions == ["started", "paused", "resumed", "exit_loop", "ended"]


def test_abort_before_start(gs, flow):
    services.group_session_abort(group_session=gs)
    gs.refresh_from_db()
    assert gs.phase == "aborted" and flow.CALLS[-1] == ("on_end", gs.pk, "aborted")


def test_kick_removes_from_lockstep(gs, join, staff):
    (s1, _m1), (s2, m2) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    answers.record_response(session=s1, step=0)
    services.group_session_kick(group_session=gs, participant=m2.pseudonym, by=staff)
    snap = selectors.snapshot(gs.pk)
    assert snap["all_responded"] is True and snap["active"] == 1
    assert {p["id"]: p["status"] for p in snap["participants"]}[m2.pseudonym] == "kicked"
    with pytest.raises(GroupError) as info:
        answers.record_response(session=s2, step=0)
    assert info.value.code == "kicked"
    assert selectors.trial_for(s2).kicked


def test_set_context_patches_and_checkpoints(gs, staff):
    services.group_session_set_context(group_session=gs, patch={"a": 1, "b": [1, 2]}, by=staff)
    services.group_session_set_context(group_session=gs, patch={"a": None, "c": "x"}, by=staff)
    gs.refresh_from_db()
    assert gs.context == {"b": [1, 2], "c": "x"}
    assert selectors.snapshot(gs.pk)["context"] == {"b": [1, 2], "c": "x"}
    with pytest.raises(GroupError) as info:
        services.group_session_set_context(group_session=gs, patch=["x"], by=staff)
    assert info.value.code == "bad_patch"


def test_context_restored_from_checkpoint_when_store_lost_it(gs, join, staff):
    join()
    services.group_session_set_context(group_session=gs, patch={"score": 7}, by=staff)
    services.group_session_start(group_session=gs, by=staff)
    get_store().delete(gs.pk)  # what a Redis restart does
    assert selectors.snapshot(gs.pk)["context"]["score"] == 7
    assert get_store().get(gs.pk)["score"] == 7


def test_presence_ack_and_location(gs, join, staff):
    s1, m1 = join()
    presence.record_presence(group_session=gs, process="p1", held={m1.pseudonym: 1})
    services.record_location(session=s1, form="trial")
    snap = selectors.snapshot(gs.pk)
    row = snap["participants"][0]
    assert row["connected"] and row["form"] == "trial" and row["behind"]
    presence.record_presence(group_session=gs, acks={m1.pseudonym: snap["version"]})
    assert selectors.snapshot(gs.pk)["participants"][0]["behind"] is False
    presence.record_presence(group_session=gs, process="p1", held={m1.pseudonym: 0})
    assert selectors.snapshot(gs.pk)["participants"][0]["connected"] is False


def test_finished_participant_no_longer_blocks(gs, join, staff):
    (s1, _), (s2, _) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    answers.record_response(session=s1, step=0)
    services.participant_finished(session=s2)
    assert selectors.snapshot(gs.pk)["all_responded"] is True


def test_versions_strictly_increase_and_snapshot_is_consistent(gs, join, staff):
    s1, m1 = join()
    versions = [selectors.snapshot(gs.pk)["version"]]
    for call in (
        lambda: services.group_session_start(group_session=gs, by=staff),
        lambda: answers.record_response(session=s1, step=0),
        lambda: services.group_session_advance(group_session=gs, step=0, by=staff),
        lambda: services.group_session_set_context(group_session=gs, patch={"x": 1}, by=staff),
    ):
        call()
        versions.append(selectors.snapshot(gs.pk)["version"])
    assert versions == sorted(set(versions))


def test_participant_view_hides_context_and_others(gs, join, staff):
    (_s1, m1), (_s2, m2) = join(), join()
    full = selectors.snapshot(gs.pk)
    view = store.participant_view(full, m1.pseudonym)
    assert "context" not in view and "participants" not in view
    assert view["me"]["id"] == m1.pseudonym and m2.pseudonym not in str(view)


def test_trial_for(gs, join, staff):
    s1, m1 = join()
    assert selectors.trial_for(SessionFactory()) is None
    view = selectors.trial_for(s1)
    assert view.phase == "waiting" and view.must_wait
    services.group_session_start(group_session=gs, by=staff)
    view = selectors.trial_for(s1)
    assert not view.must_wait and view.shared_params["color"] == "red"
    answers.record_response(session=s1, step=0)
    assert selectors.trial_for(s1).must_wait


def test_hooks_see_responses(gs, join, staff, flow):
    from runner.models import Response
    from tests.factories import FormFactory

    s1, m1 = join()
    services.group_session_start(group_session=gs, by=staff)
    answers.record_response(session=s1, step=0)
    Response.objects.create(
        session=s1,
        experiment=gs.experiment,
        form=FormFactory(),
        form_order=1,
        item="rating",
        value=4,
        group_session=gs,
        step=0,
    )
    from groups import hooks

    state, ids = store.load_state(gs)
    group = hooks.Group(gs, state, ids)
    assert group.responses == [{"participant": m1.pseudonym, "step": 0, "item": "rating", "value": 4}]
    assert group.params == {"k": 1} and group.participants[0].id == m1.pseudonym


def test_exit_loop_flags_every_active_run(gs, join, staff, django_capture_on_commit_callbacks):
    (s1, _), (s2, m2) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_kick(group_session=gs, participant=m2.pseudonym, by=staff)
    with django_capture_on_commit_callbacks(execute=True):
        services.group_session_exit_loop(group_session=gs, by=staff)
    s1.refresh_from_db()
    s2.refresh_from_db()
    assert s1.state.get("exit_loop") is True and not s2.state.get("exit_loop")


def test_a_finished_run_counts_as_finished(gs, join, staff):
    (s1, _), (s2, _) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    answers.record_response(session=s1, step=0)
    s2.end = timezone.now()
    s2.save(update_fields=["end"])
    snap = selectors.snapshot(gs.pk)
    assert snap["all_responded"] and "finished" in {p["status"] for p in snap["participants"]}


def test_on_response_of_the_last_answer_runs_before_on_all_responded(gs, join, staff, flow):
    (s1, m1), (s2, m2) = join(), join()
    services.group_session_start(group_session=gs, by=staff)
    answers.record_response(session=s1, step=0, answers={"rating": 3})
    answers.record_response(session=s2, step=0, answers={"rating": 5})
    order = [c[0] if c[0] != "on_response" else (c[0], c[2]) for c in flow.CALLS if c[0] != "on_advance"]
    assert order[-3:] == [("on_response", m1.pseudonym), ("on_response", m2.pseudonym), "on_all_responded"]


def test_context_written_by_hooks_is_checkpointed_at_once(gs, join, staff):
    """on_join and on_response write the context (flow_fixture): the database checkpoint
    follows at once, not only at the next step change, so a Redis restart loses nothing."""
    s1, m1 = join()
    gs.refresh_from_db()
    assert gs.context == {f"joined_{m1.pseudonym}": True}
    services.group_session_start(group_session=gs, by=staff)
    answers.record_response(session=s1, step=0, answers={"rating": 3})
    gs.refresh_from_db()
    assert gs.context["last"] == m1.pseudonym
