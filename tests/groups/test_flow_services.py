"""Flow control through the services (issue 20): a timed group_trial's countdown, its
timeout and the auto-advance fired by the timers as the console's advance would be,
the console's per-participant controls, dropouts; everything in the step log."""

from __future__ import annotations

import pytest

from groups import answers, flowhandlers, flowservices, live, presence, services, timers
from groups.models import GroupSession, Membership, StepLog, Timer
from groups.state import GroupError
from tests.factories import ExperimentXFormFactory

pytestmark = pytest.mark.django_db(transaction=True)


def timed(experiment, **flow):
    ExperimentXFormFactory(experiment=experiment, handler="group_trial", flow=flow)
    experiment.save()  # a reloaded definition saves the experiment: the flow is read anew


def due_now(kind=None):
    """Time travel for the timers: what is armed is due now (the scheduler is tested in
    test_timers / test_timer_processes; here the services' part)."""
    pending = Timer.objects.filter(fired_ms__isnull=True)
    (pending.filter(kind=kind) if kind else pending).update(due_ms=timers.now_ms() - 1)
    return timers.fire_due("test")


def sockets(gs, held):
    """The sockets this (test) server process holds per participant, as the hub writes them."""
    presence.record_presence(group_session=gs, process="test-process", held=held)


def log(gs):
    return [(e.step, e.action, e.data) for e in StepLog.objects.filter(group_session=gs).order_by("at_ms", "id")]


def actions_of(gs):
    return [action for _step, action, _data in log(gs)]


@pytest.fixture
def pair(gs, join):
    (s1, m1), (s2, m2) = join(), join()
    return (s1, m1.pseudonym), (s2, m2.pseudonym)


def test_a_timed_step_counts_down_from_its_start_and_skips_open_answers(experiment, gs, pair, staff, flow):
    timed(experiment, timeout_seconds=30, on_timeout="skip", auto_advance="all_responded")
    before = timers.now_ms()
    services.group_session_start(group_session=gs, by=staff)
    gs.refresh_from_db()
    lead = live.lead_ms(gs, 2)  # the countdown starts at the step's onset (test below); the group's lead
    assert before + lead + 30_000 <= gs.deadline_ms <= timers.now_ms() + lead + 30_000
    timer = Timer.objects.get(kind="timeout")
    assert (timer.key, timer.due_ms, timer.data["on_timeout"]) == ("0", gs.deadline_ms, "skip")
    assert flowservices.step_flow(gs, services.load_state(gs)[0]).timeout_ms == 30_000
    (s1, p1), (_s2, p2) = pair
    answers.record_response(session=s1, step=0, answers={"rating": 3})
    assert due_now("timeout") == 2  # the timeout, then the auto-advance it made due
    gs.refresh_from_db()
    assert gs.step == 1 and gs.timed_out_step == 0
    entries = log(gs)
    assert (0, "skipped", {"participant": p2, "bot": False}) in entries
    assert not any(a == "skipped" and d["participant"] == p1 for _s, a, d in entries)
    advanced = [d for s, a, d in entries if a == "advanced"]
    assert advanced == [{"from": 0, "by": "auto"}]
    assert ("on_advance", gs.pk, 1) in flow.CALLS  # the hook as for the console's advance
    assert Timer.objects.get(kind="timeout", key="1").fired_ms is None  # step 1 counts down anew


def test_the_countdown_runs_from_the_steps_onset_on_every_page(experiment, gs, pair, staff):
    """The deadline is the live page's starts_at (chosen with its lead before the commit)
    plus the timeout: the snapshot every page and the console get carries both, and the
    timer fires at that deadline, at the start and at each advance."""
    from groups import store

    timed(experiment, timeout_seconds=30)
    for change in ("start", "advance"):
        before = timers.now_ms()
        if change == "start":
            services.group_session_start(group_session=gs, by=staff)
        else:
            services.group_session_advance(group_session=gs, step=0, by=staff)
        gs.refresh_from_db()
        snap = store.snapshot(gs.pk)
        assert snap["starts_at"] >= before + live.lead_ms(gs, 2) - 5  # the onset is after the lead
        assert snap["timer"]["deadline_ms"] == snap["starts_at"] + 30_000 == gs.deadline_ms
        assert Timer.objects.get(kind="timeout", key=str(gs.step)).due_ms == gs.deadline_ms
        assert live.starts_at(gs, services.load_state(gs)[0]) == snap["starts_at"]  # kept for the step


def test_all_responded_advances_after_the_delay(experiment, gs, pair, staff):
    timed(experiment, auto_advance="all_responded", auto_advance_delay_seconds=2)
    services.group_session_start(group_session=gs, by=staff)
    (s1, _), (s2, _) = pair
    answers.record_response(session=s1, step=0)
    assert not Timer.objects.filter(kind="advance").exists()
    answers.record_response(session=s2, step=0)
    timer = Timer.objects.get(kind="advance")
    assert timer.due_ms - timers.now_ms() > 1500  # the delay
    assert timers.fire_due("test") == 0
    due_now()
    assert GroupSession.objects.get(pk=gs.pk).step == 1


def test_the_experimenter_advancing_first_makes_the_auto_advance_a_no_op(experiment, gs, pair, staff):
    timed(experiment, auto_advance="all_responded", auto_advance_delay_seconds=5)
    services.group_session_start(group_session=gs, by=staff)
    for session, _ in pair:
        answers.record_response(session=session, step=0)
    services.group_session_advance(group_session=gs, step=0, by=staff)
    assert due_now() == 0  # the armed advance of step 0 was disarmed with the step change
    assert GroupSession.objects.get(pk=gs.pk).step == 1


def test_timeout_submit_flags_timed_out_and_experimenter_mode_waits(experiment, gs, pair, staff):
    timed(experiment, timeout_seconds=10)
    services.group_session_start(group_session=gs, by=staff)
    due_now()
    gs.refresh_from_db()
    assert gs.step == 0 and gs.timed_out_step == 0  # no auto_advance: the console moves on
    assert {m.flag for m in Membership.objects.filter(group_session=gs)} == {"timed_out"}
    assert actions_of(gs).count("timed_out") == 2 and "timer_expired" in actions_of(gs)


def test_extend_and_stop_the_timer_from_the_console(experiment, gs, pair, staff):
    timed(experiment, timeout_seconds=10, auto_advance="timeout")
    services.group_session_start(group_session=gs, by=staff)
    deadline = GroupSession.objects.get(pk=gs.pk).deadline_ms
    flowhandlers.extend_timer(group_session=gs, step=0, seconds=20, by=staff)
    assert Timer.objects.get(kind="timeout").due_ms == deadline + 20_000
    flowhandlers.stop_timer(group_session=gs, step=0, by=staff)
    assert not Timer.objects.filter(kind="timeout").exists() and due_now() == 0
    with pytest.raises(GroupError) as info:
        flowhandlers.extend_timer(group_session=gs, step=0, seconds=5, by=staff)
    assert info.value.code == "no_timer"
    assert {"timer_extended", "timer_stopped"} <= set(actions_of(gs))


def test_pause_keeps_the_time_left_and_resume_arms_it_again(experiment, gs, pair, staff):
    timed(experiment, timeout_seconds=10)
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_pause(group_session=gs, by=staff)
    assert not Timer.objects.filter(kind="timeout", fired_ms__isnull=True).exists()
    services.group_session_resume(group_session=gs, by=staff)
    gs.refresh_from_db()
    assert Timer.objects.get(kind="timeout").due_ms == gs.deadline_ms > timers.now_ms() + 8000


def test_move_on_send_back_and_resend(experiment, gs, pair, staff):
    services.group_session_start(group_session=gs, by=staff)
    (s1, p1), (_s2, p2) = pair
    flowhandlers.move_on(group_session=gs, participant=p2, step=0, by=staff)
    assert Membership.objects.get(pseudonym=p2).flag == "skipped"
    flowhandlers.send_back(group_session=gs, participant=p2, step=0, by=staff)
    member = Membership.objects.get(pseudonym=p2)
    assert (member.flag, member.responded_step, member.status) == ("", None, "answering")
    version = GroupSession.objects.get(pk=gs.pk).participant_version
    flowhandlers.resend(group_session=gs, participant=p1, by=staff)
    assert GroupSession.objects.get(pk=gs.pk).participant_version > version
    entries = [(a, d.get("participant")) for _s, a, d in log(gs)]
    assert [("moved_on", p2), ("sent_back", p2), ("resent", p1)] == [e for e in entries if e[1]][-3:]


@pytest.mark.parametrize("policy", ["continue", "end_group", "bot"])
def test_dropout_after_the_wait_offline(experiment, gs, pair, staff, policy, monkeypatch):
    monkeypatch.setattr(flowservices, "BOT_PLAYERS", [])  # (the stand-in bots: tests/bots/test_dropout_standin.py)
    experiment.dropout = {"after_seconds": 45, "policy": policy}
    experiment.save()
    services.group_session_start(group_session=gs, by=staff)
    (s1, p1), (_s2, p2) = pair
    sockets(gs, {p1: 1, p2: 1})
    sockets(gs, {p1: 1, p2: 0})
    # at the start both were still offline (armed then too: those firings find them online)
    timer = Timer.objects.filter(kind="dropout").latest("id")
    assert timer.data["participant"] == p2 and timer.due_ms > timers.now_ms() + 40_000
    due_now()
    member = Membership.objects.get(pseudonym=p2)
    assert member.dropped_at_ms is not None and member.bot == (policy == "bot")
    gs.refresh_from_db()
    assert gs.phase == ("ended" if policy == "end_group" else "running")
    dropped = [d for _s, a, d in log(gs) if a == "dropped_out"]
    assert dropped[0]["participant"] == p2 and dropped[0]["policy"] == policy
    if policy == "continue":  # the group goes on without them: one answer is everyone
        answers.record_response(session=s1, step=0)
        assert GroupSession.objects.get(pk=gs.pk).phase == "running"
        assert StepLog.objects.filter(group_session=gs, action="dropped_out").count() == 1


def test_a_participant_back_in_time_is_not_dropped(experiment, gs, pair, staff):
    experiment.dropout = {"after_seconds": 45}
    experiment.save()
    services.group_session_start(group_session=gs, by=staff)
    (_s1, p1), (_s2, p2) = pair
    sockets(gs, {p1: 1, p2: 1})
    sockets(gs, {p1: 1, p2: 0})
    sockets(gs, {p1: 1, p2: 1})
    due_now()
    assert Membership.objects.get(pseudonym=p2).dropped_at_ms is None
    assert "dropped_out" not in actions_of(gs)


def test_flow_events_are_exported_with_their_dictionary(experiment, gs, pair, staff, tmp_path):
    import csv
    import io
    import zipfile

    from exports.services import run_export

    experiment.dropout = {"after_seconds": 45, "policy": "bot"}
    experiment.save()
    timed(experiment, timeout_seconds=10, on_timeout="submit")
    services.group_session_start(group_session=gs, by=staff)
    (_s1, p1), (_s2, p2) = pair
    sockets(gs, {p1: 1})
    due_now()  # the timeout (both flagged timed_out), p2's dropout (never connected)
    flowhandlers.send_back(group_session=gs, participant=p1, step=0, by=staff)
    flowhandlers.move_on(group_session=gs, participant=p1, step=0, by=staff)
    result = run_export(experiment=experiment, fmt="csv-long", out=tmp_path)
    with zipfile.ZipFile(result.path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("_steps.csv"))
        rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
        dictionary = archive.read(name.replace(".csv", "_dictionary.csv")).decode()
    for column in ("participant", "by", "timed_out", "skipped", "dropped_at", "played_by_bot"):
        assert f"\n{column}," in dictionary
    by_action = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert {r["participant"] for r in by_action["timed_out"]} == {p1, p2}
    assert all(r["timed_out"] == "true" and r["by"] == "" for r in by_action["timed_out"])
    (moved,) = by_action["moved_on"]
    assert (moved["participant"], moved["skipped"], moved["by"]) == (p1, "true", "experimenter")
    (dropped,) = by_action["dropped_out"]
    assert dropped["participant"] == p2 and dropped["dropped_at"].endswith("Z")
    assert by_action["bot_took_over"][0]["played_by_bot"] == "true"


def test_an_answer_to_a_skipped_step_stores_nothing_and_a_timed_out_one_is_kept(experiment, gs, pair, staff):
    services.group_session_start(group_session=gs, by=staff)
    (s1, p1), (s2, p2) = pair
    flowhandlers.move_on(group_session=gs, participant=p1, step=0, by=staff)
    with pytest.raises(GroupError) as info:
        answers.record_response(session=s1, step=0, answers={"rating": 3})
    assert info.value.code == "skipped"
    timed(experiment, timeout_seconds=5)  # on_timeout: submit: the page sends what is filled
    Membership.objects.filter(pseudonym=p2).update(flag="timed_out", responded_step=0, status="responded")
    answers.record_response(session=s2, step=0, answers={"rating": 5})  # the late answer: accepted, once
    assert Membership.objects.get(pseudonym=p2).flag == "late_answer"
    with pytest.raises(GroupError) as info:
        answers.record_response(session=s2, step=0, answers={"rating": 4})
    assert info.value.code == "already_answered"


def test_policy_bot_hands_the_run_to_the_registered_bot_players(experiment, gs, pair, staff, monkeypatch):
    """Issue 19's bots plug in at flowservices.BOT_PLAYERS: called after the commit with
    the group session, the pseudonym and the run a bot now plays on."""
    played = []
    monkeypatch.setattr(flowservices, "BOT_PLAYERS", [lambda *args: played.append(args)])
    experiment.dropout = {"after_seconds": 45, "policy": "bot"}
    experiment.save()
    services.group_session_start(group_session=gs, by=staff)
    (s1, p1), (s2, p2) = pair
    Membership.objects.filter(pseudonym=p1).update(offline_since_ms=None, connections=1)  # p1 online
    due_now()
    assert played == [(gs.pk, p2, s2.pk)]
    assert Membership.objects.get(pseudonym=p2).bot
