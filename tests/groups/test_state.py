"""The pure lockstep state machine: every transition and every refusal (no DB)."""

from __future__ import annotations

import pytest

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


def refused(state, action, code):
    with pytest.raises(GroupError) as info:
        transition(state, action, now_ms=T)
    assert info.value.code == code
    return info.value


@pytest.fixture
def waiting():
    state, _ = apply(GroupState(), s.Join("ann"), s.Join("bob"))
    return state


@pytest.fixture
def running(waiting):
    return apply(waiting, s.Start())[0]


@pytest.fixture
def paused(running):
    return apply(running, s.Pause())[0]


@pytest.fixture
def ended(running):
    return apply(running, s.End())[0]


@pytest.fixture
def aborted(waiting):
    return apply(waiting, s.Abort())[0]


def test_initial_state():
    state = GroupState()
    assert (state.phase, state.step, state.version, dict(state.participants)) == ("waiting", 0, 1, {})
    assert not state.all_responded


def test_state_is_frozen(waiting):
    with pytest.raises(AttributeError):
        waiting.phase = "running"
    with pytest.raises(TypeError):
        waiting.participants["eve"] = s.Participant()


def test_join_adds_participant_and_is_visible():
    state, events = apply(GroupState(), s.Join("ann"), now=T + 5)
    assert "ann" in state.participants
    assert state.version == state.participant_version == 2
    assert state.changed_ms == T + 5
    assert events == [s.Event("joined", T + 5, {"participant": "ann"})]


def test_join_twice_refused(waiting):
    refused(waiting, s.Join("ann"), "already_joined")


@pytest.mark.parametrize("fixture", ["ended", "aborted"])
def test_join_after_end_refused(fixture, request):
    refused(request.getfixturevalue(fixture), s.Join("eve"), "ended")


def test_start(waiting):
    state, events = apply(waiting, s.Start(), now=T + 1)
    assert state.phase == "running" and state.step == 0
    assert state.version == waiting.version + 1
    assert kinds(events) == ["started"] and events[0].at_ms == T + 1


def test_start_refusals(running, paused, ended, aborted):
    refused(running, s.Start(), "already_started")
    refused(paused, s.Start(), "already_started")
    refused(ended, s.Start(), "ended")
    refused(aborted, s.Start(), "ended")


def test_advance_moves_to_next_step_and_resets_statuses(running):
    state, _ = apply(running, s.Respond("ann", 0), s.Respond("bob", 0))
    assert state.all_responded
    state, events = apply(state, s.Advance(0), now=T + 9)
    assert state.step == 1
    assert not state.all_responded
    assert {p.status for p in state.participants.values()} == {"waiting"}
    assert events == [s.Event("advanced", T + 9, {"from": 0, "step": 1})]


def test_advance_anyway_without_all_responded(running):
    state, _ = apply(running, s.Advance(0))
    assert state.step == 1


def test_stale_advance_refused_and_changes_nothing(running):
    state, _ = apply(running, s.Advance(0))
    error = refused(state, s.Advance(0), "stale_step")
    assert "not the current step" in error.message
    refused(state, s.Advance(5), "stale_step")


def test_advance_refusals(waiting, paused, ended, aborted):
    refused(waiting, s.Advance(0), "not_started")
    refused(paused, s.Advance(0), "not_running")
    refused(ended, s.Advance(0), "ended")
    refused(aborted, s.Advance(0), "ended")


def test_pause_and_resume(running):
    paused, events = apply(running, s.Pause())
    assert paused.phase == "paused" and kinds(events) == ["paused"]
    resumed, events = apply(paused, s.Resume())
    assert resumed.phase == "running" and kinds(events) == ["resumed"]
    assert resumed.version == running.version + 2


def test_pause_refusals(waiting, paused, ended):
    refused(waiting, s.Pause(), "not_started")
    refused(paused, s.Pause(), "not_running")
    refused(ended, s.Pause(), "ended")


def test_resume_refusals(waiting, running, ended, aborted):
    refused(waiting, s.Resume(), "not_started")
    refused(running, s.Resume(), "not_paused")
    refused(ended, s.Resume(), "ended")
    refused(aborted, s.Resume(), "ended")


def test_exit_loop_marks_step_and_next_advance_clears_it(running, paused):
    state, events = apply(running, s.ExitLoop())
    assert state.exit_loop_step == 0 and kinds(events) == ["exit_loop"]
    assert state.participant_version == state.version
    state, _ = apply(state, s.Advance(0))
    assert state.exit_loop_step is None
    assert apply(paused, s.ExitLoop())[0].exit_loop_step == 0


def test_exit_loop_refusals(waiting, ended):
    refused(waiting, s.ExitLoop(), "not_started")
    refused(ended, s.ExitLoop(), "ended")


def test_end(running, paused):
    state, events = apply(running, s.End())
    assert state.phase == "ended" and kinds(events) == ["ended"]
    assert apply(paused, s.End())[0].phase == "ended"


def test_end_refusals(waiting, ended, aborted):
    refused(waiting, s.End(), "not_started")
    refused(ended, s.End(), "ended")
    refused(aborted, s.End(), "ended")


@pytest.mark.parametrize("fixture", ["waiting", "running", "paused"])
def test_abort_from_any_live_phase(fixture, request):
    state, events = apply(request.getfixturevalue(fixture), s.Abort())
    assert state.phase == "aborted" and kinds(events) == ["aborted"]


def test_abort_refused_when_over(ended, aborted):
    refused(ended, s.Abort(), "ended")
    refused(aborted, s.Abort(), "ended")


def test_set_context_is_experimenter_only_change(running):
    state, events = apply(running, s.SetContext({"color": "red"}))
    assert state.version == running.version + 1
    assert state.participant_version == running.participant_version
    assert events[0].kind == "context_set" and events[0].data == {"patch": {"color": "red"}}
    assert apply(GroupState(), s.SetContext({}))[0].version == 2  # allowed before the start


def test_set_context_refusals(running, ended):
    refused(running, s.SetContext(["not", "a", "dict"]), "bad_patch")
    refused(running, s.SetContext({1: "x"}), "bad_patch")
    refused(ended, s.SetContext({"a": 1}), "ended")


def test_kick(running):
    state, events = apply(running, s.Kick("bob"))
    assert state.participants["bob"].status == "kicked"
    assert state.active == ["ann"]
    assert kinds(events) == ["kicked"]


def test_kick_completes_all_responded(running):
    state, _ = apply(running, s.Respond("ann", 0))
    state, events = apply(state, s.Kick("bob"))
    assert kinds(events) == ["kicked", "all_responded"]
    assert state.all_responded


def test_kick_refusals(running, ended):
    refused(running, s.Kick("eve"), "unknown_participant")
    kicked, _ = apply(running, s.Kick("bob"))
    refused(kicked, s.Kick("bob"), "kicked")
    refused(ended, s.Kick("ann"), "ended")


def test_connect_and_disconnect_count_sockets(waiting):
    state, events = apply(waiting, s.Connect("ann"))
    assert state.participants["ann"].connected and kinds(events) == ["connected"]
    assert state.participant_version == waiting.participant_version  # console only
    state, events = apply(state, s.Connect("ann"))  # a second tab
    assert state.participants["ann"].connections == 2 and events == []
    state, events = apply(state, s.Disconnect("ann"))
    assert state.participants["ann"].connected and events == []
    state, events = apply(state, s.Disconnect("ann"))
    assert not state.participants["ann"].connected and kinds(events) == ["disconnected"]
    same, events = apply(state, s.Disconnect("ann"))
    assert same is state and events == []


def test_connect_refusals(running):
    refused(running, s.Connect("eve"), "unknown_participant")
    refused(running, s.Disconnect("eve"), "unknown_participant")
    kicked, _ = apply(running, s.Kick("bob"))
    refused(kicked, s.Connect("bob"), "kicked")
    assert apply(kicked, s.Disconnect("bob"))[1] == []  # a kicked socket may still close


def test_connect_after_end_is_allowed(ended):
    state, _ = apply(ended, s.Connect("ann"))
    assert state.participants["ann"].connected


def test_locate_records_form_and_answering(running, waiting):
    state, events = apply(running, s.Locate("ann", "trial"))
    assert state.participants["ann"].form == "trial"
    assert state.participants["ann"].status == "answering"
    assert kinds(events) == ["located"]
    assert apply(state, s.Locate("ann", "trial")) == (state, [])
    before, _ = apply(waiting, s.Locate("ann", "consent"))
    assert before.participants["ann"].status == "joined"
    refused(running, s.Locate("eve", "x"), "unknown_participant")


def test_ready_counts_before_start(waiting):
    state, events = apply(waiting, s.Ready("ann", 0))
    assert state.participants["ann"].status == "waiting"
    assert state.ready_count == 1 and kinds(events) == ["ready"]
    assert apply(state, s.Ready("ann", 0)) == (state, [])


def test_ready_refusals(running, ended):
    refused(running, s.Ready("ann", 3), "stale_step")
    refused(running, s.Ready("eve", 0), "unknown_participant")
    refused(ended, s.Ready("ann", 0), "ended")


def test_respond_and_all_responded(running):
    state, events = apply(running, s.Respond("ann", 0))
    assert state.participants["ann"].responded_step == 0
    assert state.participants["ann"].status == "responded"
    assert kinds(events) == ["responded"] and state.ready_count == 1
    state, events = apply(state, s.Respond("bob", 0))
    assert kinds(events) == ["responded", "all_responded"]
    assert state.ready_count == 2


def test_a_second_answer_to_a_step_is_refused(running):
    """The runner turns a repeated POST of one visit into a duplicate before the group
    sees it: a second Respond is another visit, and storing it would make two rows."""
    state, _ = apply(running, s.Respond("ann", 0))
    refused(state, s.Respond("ann", 0), "already_answered")
    nxt, _ = apply(state, s.Respond("bob", 0), s.Advance(0))
    assert apply(nxt, s.Respond("ann", 1))[0].participants["ann"].responded_step == 1  # the next step: a first answer


def test_respond_while_paused_is_accepted(paused):
    state, _ = apply(paused, s.Respond("ann", 0))
    assert state.participants["ann"].responded_step == 0


def test_respond_refusals(waiting, running, ended, aborted):
    refused(waiting, s.Respond("ann", 0), "not_started")
    refused(running, s.Respond("ann", 1), "stale_step")
    refused(running, s.Respond("eve", 0), "unknown_participant")
    refused(ended, s.Respond("ann", 0), "ended")
    refused(aborted, s.Respond("ann", 0), "ended")
    kicked, _ = apply(running, s.Kick("ann"))
    refused(kicked, s.Respond("ann", 0), "kicked")


def test_stale_respond_after_advance(running):
    state, _ = apply(running, s.Advance(0))
    refused(state, s.Respond("ann", 0), "stale_step")


def test_ack_tracks_version_and_behind(running):
    assert s.is_behind(running, "ann")
    state, events = apply(running, s.Ack("ann", running.version))
    assert state.participants["ann"].acked_version == running.version
    assert not s.is_behind(state, "ann") and s.is_behind(state, "bob")
    assert state.participant_version == running.participant_version
    assert kinds(events) == ["acked"]
    assert apply(state, s.Ack("ann", running.version - 1)) == (state, [])  # older: ignored


def test_ack_refusals(running):
    refused(running, s.Ack("ann", running.version + 1), "bad_version")
    refused(running, s.Ack("ann", -1), "bad_version")
    refused(running, s.Ack("eve", 1), "unknown_participant")


def test_finish_leaves_the_lockstep(running):
    state, _ = apply(running, s.Respond("ann", 0))
    state, events = apply(state, s.Finish("bob"))
    assert kinds(events) == ["finished"]
    assert state.all_responded  # bob no longer holds the group back
    assert apply(state, s.Finish("bob")) == (state, [])
    refused(running, s.Finish("eve"), "unknown_participant")


def test_unknown_action_refused():
    refused(GroupState(), object(), "unknown_action")


def test_every_change_bumps_version_strictly(waiting):
    actions = [
        s.Connect("ann"),
        s.Ready("ann", 0),
        s.Start(),
        s.Locate("ann", "trial"),
        s.Respond("ann", 0),
        s.Ack("ann", 5),
        s.Advance(0),
        s.Pause(),
        s.Resume(),
        s.ExitLoop(),
        s.SetContext({"a": 1}),
        s.Kick("bob"),
        s.End(),
    ]
    state, versions = waiting, [waiting.version]
    for action in actions:
        state, _ = transition(state, action, now_ms=T)
        versions.append(state.version)
    assert versions == sorted(set(versions))


def test_everyone_finished_counts_as_all_responded(running):
    state, _ = apply(running, s.Finish("ann"), s.Finish("bob"))
    assert state.active == [] and state.all_responded
    kicked, _ = apply(running, s.Kick("ann"), s.Kick("bob"))
    assert not kicked.all_responded
