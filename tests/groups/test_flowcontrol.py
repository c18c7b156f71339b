"""Flow control as pure transitions (issue 20): timers, auto-advance, the console's
per-participant controls, dropouts and the lobby, with time as an argument (no DB)."""

from __future__ import annotations

import pytest

from groups import actions as a
from groups import flowcontrol as f
from groups import state as s
from groups.state import GroupError, GroupState, transition

T = 1_700_000_000_000


def apply(state, *actions, now=T):
    events = []
    for action in actions:
        state, new_events = transition(state, action, now_ms=now)
        events += new_events
    return state, events


def kinds(events):
    return [e.kind for e in events]


def refused(state, action, code, now=T):
    with pytest.raises(GroupError) as info:
        transition(state, action, now_ms=now)
    assert info.value.code == code


@pytest.fixture
def running():
    state, _ = apply(GroupState(), s.Join("ann"), s.Join("bob"), s.Connect("ann"), s.Connect("bob"), s.Start())
    return state


@pytest.fixture
def timed(running):
    return apply(running, a.StartTimer(0, T + 5000))[0]


# ---- settings -------------------------------------------------------------------


def test_settings_from_the_definition():
    flow = f.StepFlow.from_definition(
        {"timeout_seconds": 5, "auto_advance": "all_responded", "auto_advance_delay_seconds": 1.5}
    )
    assert (flow.timeout_ms, flow.on_timeout, flow.auto_advance, flow.delay_ms) == (
        5000,
        "submit",
        "all_responded",
        1500,
    )
    assert flow.deadline(T) == T + 5000 and f.StepFlow.from_definition({}).deadline(T) is None
    assert f.DropoutPolicy.from_definition({}) is None
    assert f.DropoutPolicy.from_definition({"after_seconds": 45}) == f.DropoutPolicy(45000, "continue")
    lobby = f.LobbyPolicy.from_definition({"min_size": 2, "wait_seconds": 60})
    assert (lobby.min_size, lobby.max_size, lobby.wait_ms) == (2, 2, 60000)


# ---- timers ---------------------------------------------------------------------


def test_timer_starts_and_participants_see_the_deadline(running):
    new, events = apply(running, a.StartTimer(0, T + 5000))
    assert new.deadline_ms == T + 5000 and new.participant_version == new.version
    assert kinds(events) == ["timer_started"] and f.timer_view(new)["deadline_ms"] == T + 5000
    assert apply(new, a.StartTimer(0, T + 5000))[0] is new  # the same timer again: nothing
    refused(running, a.StartTimer(3, T + 5000), "stale_step")


def test_timeout_submit_flags_open_answers_and_completes_the_step(timed):
    timed, _ = apply(timed, s.Respond("ann", 0))
    new, events = apply(timed, a.TimeOut(0, "submit"), now=T + 5010)
    assert kinds(events) == ["timer_expired", "timed_out", "all_responded"]
    assert events[1].data == {"participant": "bob", "step": 0, "bot": False}
    assert new.participants["bob"].flag == "timed_out" and new.participants["bob"].responded_step == 0
    assert new.participants["ann"].flag == "" and new.all_responded and new.timed_out_step == 0
    assert new.deadline_ms is None and f.timer_view(new)["timed_out"]


def test_the_late_answer_after_a_submit_timeout_is_taken_once(timed):
    out, _ = apply(timed, a.TimeOut(0, "submit"), now=T + 5010)
    late, events = apply(out, s.Respond("bob", 0), now=T + 5200)  # the page sends what is filled
    assert kinds(events) == ["responded"] and events[0].data["late"]
    assert late.participants["bob"].flag == f.LATE_ANSWER and late.participants["bob"].responded_step == 0
    assert late.participant_version > out.participant_version and late.all_responded
    refused(late, s.Respond("bob", 0), "already_answered")  # a second visit after it: nothing stored
    answered, _ = apply(timed, s.Respond("ann", 0))
    closed, _ = apply(answered, a.TimeOut(0, "submit"), now=T + 5010)
    refused(closed, s.Respond("ann", 0), "already_answered")  # answered in time: the timer did not reopen it
    skipped, _ = apply(timed, a.TimeOut(0, "skip"), now=T + 5010)
    refused(skipped, s.Respond("bob", 0), "skipped")


def test_timeout_skip_flags_skipped(timed):
    new, events = apply(timed, a.TimeOut(0, "skip"), now=T + 5000)
    assert kinds(events) == ["timer_expired", "skipped", "skipped", "all_responded"]
    assert {p.flag for p in new.participants.values()} == {"skipped"}


def test_early_repeated_stopped_or_stale_timeouts_change_nothing(timed):
    assert apply(timed, a.TimeOut(0), now=T + 4999)[0] is timed  # extended or early: not yet
    done, _ = apply(timed, a.TimeOut(0), now=T + 5000)
    assert apply(done, a.TimeOut(0), now=T + 9000)[0] is done  # fired twice: once
    stopped, events = apply(timed, a.StopTimer(0))
    assert kinds(events) == ["timer_stopped"] and apply(stopped, a.TimeOut(0), now=T + 9000)[0] is stopped
    refused(timed, a.TimeOut(1), "stale_step", now=T + 9000)
    refused(timed, a.TimeOut(0, "later"), "bad_flow", now=T + 9000)


def test_a_timer_armed_for_the_deadline_fires_whatever_the_local_clock_says(timed):
    """Another process's clock may be a little behind: the deadline it was armed for counts."""
    new, events = apply(timed, a.TimeOut(0, "submit", deadline_ms=T + 5000), now=T + 4990)
    assert kinds(events)[0] == "timer_expired" and new.timed_out_step == 0
    extended, _ = apply(timed, a.ExtendTimer(0, 10))
    assert apply(extended, a.TimeOut(0, deadline_ms=T + 5000), now=T + 9000)[0] is extended


def test_extend_and_stop_need_a_timer(running, timed):
    new, events = apply(timed, a.ExtendTimer(0, 10))
    assert new.deadline_ms == T + 15000 and events[0].data["seconds"] == 10
    assert apply(new, a.TimeOut(0), now=T + 6000)[0] is new
    for bad in (0, -1, float("nan"), float("inf"), True, "5", 10**9):
        refused(timed, a.ExtendTimer(0, bad), "bad_seconds")
    refused(running, a.ExtendTimer(0, 10), "no_timer")
    refused(running, a.StopTimer(0), "no_timer")


def test_pause_keeps_the_time_left_and_resume_restarts_it(timed):
    paused, _ = apply(timed, s.Pause(), now=T + 2000)
    assert paused.deadline_ms is None and paused.timer_remaining_ms == 3000
    assert apply(paused, a.TimeOut(0), now=T + 6000)[0] is paused  # no firing while paused
    extended, _ = apply(paused, a.ExtendTimer(0, 1))
    resumed, _ = apply(extended, s.Resume(), now=T + 60000)
    assert resumed.deadline_ms == T + 60000 + 4000 and resumed.timer_remaining_ms is None


def test_a_new_step_clears_timer_and_flags(timed):
    out, _ = apply(timed, a.TimeOut(0, "skip"), now=T + 5000)
    nxt, _ = apply(out, s.Advance(0))
    assert nxt.deadline_ms is None and all(p.flag == "" for p in nxt.participants.values())
    assert not f.timer_view(nxt)["timed_out"]


# ---- auto-advance ---------------------------------------------------------------


def test_advance_due_all_responded_with_delay(running):
    flow = f.StepFlow(auto_advance="all_responded", delay_ms=2000)
    assert f.advance_due(running, flow, T) is None
    one, _ = apply(running, s.Respond("ann", 0))
    assert f.advance_due(one, flow, T) is None
    both, _ = apply(one, s.Respond("bob", 0))
    assert f.advance_due(both, flow, T + 100) == T + 2100
    assert f.advance_due(apply(both, s.Pause())[0], flow, T) is None  # paused: not by itself
    assert f.advance_due(both, f.StepFlow(), T) is None  # experimenter: never by itself


def test_advance_due_on_timeout_only_when_the_timer_ran_out(timed):
    flow = f.StepFlow(timeout_ms=5000, auto_advance="timeout")
    answered, _ = apply(timed, s.Respond("ann", 0), s.Respond("bob", 0))
    assert f.advance_due(answered, flow, T) is None  # everyone answered, but the mode is timeout
    out, _ = apply(answered, a.TimeOut(0), now=T + 5000)
    assert f.advance_due(out, flow, T + 5000) == T + 5000 + f.SUBMIT_GRACE_MS  # (submit: the pages' answers land)
    skip = f.StepFlow(timeout_ms=5000, auto_advance="timeout", on_timeout="skip")
    assert f.advance_due(out, skip, T + 5000) == T + 5000
    # all_responded mode: a timer that closes the open answers also moves the group on
    closed, _ = apply(timed, a.TimeOut(0), now=T + 5000)
    assert f.advance_due(closed, f.StepFlow(auto_advance="all_responded", on_timeout="skip"), T + 5000) == T + 5000


# ---- per-participant controls ---------------------------------------------------


def test_move_on_closes_the_step_as_skipped(running):
    one, _ = apply(running, s.Respond("ann", 0))
    new, events = apply(one, a.MoveOn("bob", 0))
    assert kinds(events) == ["moved_on", "all_responded"] and new.participants["bob"].flag == "skipped"
    refused(new, a.MoveOn("bob", 0), "already_responded")
    refused(new, a.MoveOn("zed", 0), "unknown_participant")
    refused(running, a.MoveOn("bob", 4), "stale_step")


def test_send_back_reopens_the_step(running):
    answered, _ = apply(running, s.Respond("ann", 0))
    new, events = apply(answered, a.SendBack("ann", 0))
    assert kinds(events) == ["sent_back"]
    assert new.participants["ann"].responded_step is None and new.participants["ann"].status == s.ANSWERING
    again, events = apply(new, s.Respond("ann", 0))
    assert kinds(events) == ["responded"]
    refused(running, a.SendBack("bob", 0), "not_responded")


def test_resend_makes_everyone_acknowledge_again(running):
    acked, _ = apply(running, s.Ack("ann", running.version))
    new, events = apply(acked, a.Resend("ann"))
    assert kinds(events) == ["resent"] and s.is_behind(new, "ann")
    refused(running, a.Resend("zed"), "unknown_participant")


# ---- dropouts -------------------------------------------------------------------


def offline(state, pid, at):
    return apply(state, s.Disconnect(pid), now=at)[0]


def test_dropout_is_due_after_the_wait_offline(running):
    policy = f.DropoutPolicy(after_ms=45000)
    gone = offline(running, "bob", T + 1000)
    assert f.dropouts_due(gone, policy) == {"bob": T + 46000}
    assert f.dropouts_due(gone, None) == {}
    assert apply(gone, a.DropOut("bob", 45000), now=T + 45999)[0] is gone  # not yet
    back = apply(gone, s.Connect("bob"), now=T + 2000)[0]
    assert f.dropouts_due(back, policy) == {} and apply(back, a.DropOut("bob", 45000), now=T + 99000)[0] is back


def test_a_dropout_timer_counts_for_the_absence_it_was_armed_for(running):
    gone = offline(running, "bob", T)
    new, events = apply(gone, a.DropOut("bob", 45000, "continue", offline_since_ms=T), now=T + 44990)
    assert kinds(events)[0] == "dropped_out"  # its clock, not this process's
    again = offline(apply(gone, a.Connect("bob"), now=T + 10)[0], "bob", T + 20)
    assert apply(again, a.DropOut("bob", 45000, offline_since_ms=T), now=T + 99000)[0] is again  # a later absence


def test_dropout_continue_lets_the_group_go_on(running):
    gone = offline(apply(running, s.Respond("ann", 0))[0], "bob", T)
    new, events = apply(gone, a.DropOut("bob", 45000, "continue"), now=T + 45000)
    assert kinds(events) == ["dropped_out", "all_responded"]
    assert events[0].data == {"participant": "bob", "step": 0, "policy": "continue", "offline_since_ms": T}
    assert new.participants["bob"].dropped_at_ms == T + 45000 and not new.participants["bob"].active
    assert apply(new, a.DropOut("bob", 45000), now=T + 99000)[0] is new  # handled once


def test_dropout_end_group_ends_the_session(running):
    gone = offline(running, "bob", T)
    new, events = apply(gone, a.DropOut("bob", 1000, "end_group"), now=T + 1000)
    assert kinds(events) == ["dropped_out", "ended"] and new.phase == s.ENDED


def test_dropout_bot_plays_on_and_the_participant_takes_over_at_the_next_step(running):
    gone = offline(running, "bob", T)
    new, events = apply(gone, a.DropOut("bob", 1000, "bot"), now=T + 1000)
    assert kinds(events) == ["dropped_out", "bot_took_over"]
    assert new.participants["bob"].bot and new.participants["bob"].active and not new.all_responded
    answered, _ = apply(new, s.Respond("ann", 0), s.Respond("bob", 0))  # the bot answers for bob
    assert answered.all_responded
    back, _ = apply(answered, s.Connect("bob"), now=T + 3000)
    assert back.participants["bob"].bot  # not in the middle of a step
    nxt, events = apply(back, s.Advance(0), now=T + 4000)
    assert kinds(events) == ["advanced", "returned"] and events[1].data["from_bot"]
    assert not nxt.participants["bob"].bot and nxt.participants["bob"].dropped_at_ms is None


def test_dropout_refused_policy_and_not_started():
    state, _ = apply(GroupState(), s.Join("ann"))
    refused(state, a.DropOut("ann", 0), "not_started", now=T + 10)
    started, _ = apply(state, s.Start())
    refused(started, a.DropOut("ann", 0, "vanish"), "bad_flow", now=T + 10)


# ---- the lobby ------------------------------------------------------------------


def arrive(state, *pids, max_size=2, now=T):
    return apply(state, *(a.Arrive(pid, max_size) for pid in pids), now=now)


def test_lobby_places_until_max_size_then_standby():
    lobby = f.LobbyPolicy(min_size=2, max_size=3, wait_ms=60000)
    state, events = arrive(GroupState(), "a", max_size=3)
    assert not f.lobby_full(state, lobby) and f.waiting_for(state, lobby) == 1
    state, events = arrive(state, "b", "c", "d", max_size=3)
    assert kinds(events) == ["joined", "joined", "standby"] and f.lobby_full(state, lobby)
    assert state.participants["d"].status == s.STANDBY and not state.participants["d"].active
    refused(state, a.Arrive("a", 3), "already_joined")
    started, _ = apply(state, s.Start())
    late, events = arrive(started, "e", max_size=9)
    assert kinds(events) == ["standby"]  # after the start, newcomers wait as standby
    assert f.lobby_full(started, lobby) is False


def test_a_full_lobby_starts_by_itself_or_asks_an_open_console():
    lobby = f.LobbyPolicy(min_size=2, max_size=3, wait_ms=60000)
    one, _ = arrive(GroupState(), "a", max_size=3)
    assert f.lobby_start(one, lobby, console_open=False) == ""  # not full: nothing to start
    full, _ = arrive(one, "b", max_size=3)
    assert f.lobby_start(full, lobby, console_open=False) == f.START
    assert f.lobby_start(full, lobby, console_open=True) == f.CONFIRM  # the console's Start now
    assert f.lobby_view(lobby, full)["waiting_for"] == 0 and f.lobby_view(lobby, full)["placed"] == 2
    started, _ = apply(full, s.Start())
    assert f.lobby_start(started, lobby, console_open=False) == ""  # confirmed meanwhile
    assert f.lobby_start(full, None, console_open=False) == ""  # no lobby


def test_lobby_releases_after_the_wait():
    lobby = f.LobbyPolicy(min_size=3, max_size=3, wait_ms=60000, release_code="C1")
    state, _ = arrive(GroupState(), "a", "b", max_size=3)
    assert f.releases_due(state, lobby) == {"a": T + 60000, "b": T + 60000}
    assert apply(state, a.Release("a", 60000), now=T + 59999)[0] is state
    new, events = apply(state, a.Release("a", 60000), now=T + 60000)
    assert kinds(events) == ["released"] and new.participants["a"].status == s.RELEASED
    assert f.releases_due(new, lobby) == {"b": T + 60000}


def test_placed_participants_of_a_started_session_are_never_released():
    state, _ = arrive(GroupState(), "a", "b", "c", max_size=2)
    started, _ = apply(state, s.Start())
    lobby = f.LobbyPolicy(min_size=2, max_size=2, wait_ms=1000)
    assert f.releases_due(started, lobby) == {"c": T + 1000}
    assert apply(started, a.Release("a", 1000), now=T + 5000)[0] is started


def test_standby_replaces_a_dropout_at_the_next_step():
    state, _ = arrive(GroupState(), "a", "b", "c", max_size=2)
    state, _ = apply(state, s.Connect("a"), s.Connect("b"), s.Connect("c"), s.Start())
    state = offline(state, "b", T)
    dropped, _ = apply(state, a.DropOut("b", 1000), now=T + 1000)
    nxt, events = apply(dropped, s.Respond("a", 0), s.Advance(0), now=T + 2000)
    assert kinds(events)[-1] == "replaced" and events[-1].data == {"participant": "c", "replaces": "b", "step": 1}
    assert nxt.participants["c"].status == s.READY and nxt.participants["c"].active
    assert nxt.participants["b"].replaced_by == "c"
    again, events = apply(nxt, s.Advance(1))  # replaced once, not again
    assert "replaced" not in kinds(events)
