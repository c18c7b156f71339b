"""The lockstep group_trial through the runner's real views: waiting screen, the
same step and shared parameters for everyone, stale answers refused and stored
nowhere, responses stamped with group session, step and shared parameters."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from groups import services
from groups.lockstep import LockstepGroupTrial, should_leave_loop
from runner.handlers import get_handler
from runner.models import Response
from tests.runner.builders import build_experiment, current, start, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def lockstep_experiment(flow):
    return build_experiment(
        [
            {"name": "trial", "handler": "group_trial", "questions": [{"key": "warm", "choices": ["Yes", "No"]}],
             "repeat": 3, "goto": 1},
            {"name": "end", "handler": "form_end_session"},
        ],
        is_group=True, group_flow="tests.groups.flow_fixture",
    )  # fmt: skip


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    """submit(), running on_commit callbacks as a committed request would (the test
    itself runs inside a transaction that never commits)."""

    def _post(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return submit(*args, **kwargs)

    return _post


@pytest.fixture
def session_of(lockstep_experiment, staff):
    gs = services.start_group_session(experiment=lockstep_experiment, experimenter=staff)

    def _join():
        client = Client()
        return client, start(client, lockstep_experiment, gs.ticket)

    _join.gs = gs
    return _join


def step(n: int) -> dict:
    return {"q-_group_step": n}  # the hidden step field of the runner's question form (prefix "q")


def page(client, session):
    response = client.get(f"/run/{session.experiment_id}/")
    assert response.status_code == 200
    return response.content.decode()


def test_registry_has_the_lockstep_handler():
    assert isinstance(get_handler("group_trial"), LockstepGroupTrial)


def test_start_link_attaches_to_the_group_session(session_of):
    client, session = session_of()
    assert session.group_membership.group_session == session_of.gs
    html = page(client, session)
    assert "Waiting for the experimenter to start" in html
    assert f"/ws/group/{session_of.gs.pk}/participant/" in html and "group_live.js" in html


def test_lockstep_round_trip(session_of, staff, post):
    gs = session_of.gs
    (ann, s1), (bob, s2) = session_of(), session_of()
    services.group_session_start(group_session=gs, by=staff)
    html = page(ann, s1)
    assert 'name="q-_group_step"' in html and 'value="0"' in html and "data-lockstep" in html
    assert post(ann, s1, {"warm": "Yes"}, **step(0)).status_code == 302
    assert "Waiting for the others" in page(ann, s1)  # answered: waits for the group
    assert 'name="q-_group_step"' in page(bob, s2)  # bob still answers step 0
    post(bob, s2, {"warm": "No"}, **step(0))
    rows = Response.objects.filter(group_session=gs).order_by("session_id")
    assert [(r.step, r.value, r.shared_params) for r in rows] == [
        (0, "Yes", {"color": "red", "step": 0}),
        (0, "No", {"color": "red", "step": 0}),
    ]
    services.group_session_advance(group_session=gs, step=0, by=staff)
    assert 'name="q-_group_step"' in page(ann, s1) and current(s1)["visit"] == 2


def test_stale_step_answer_is_refused_and_stored_nowhere(session_of, staff, post):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    page(ann, s1)
    services.group_session_advance(group_session=gs, step=0, by=staff)  # "advance anyway"
    response = post(ann, s1, {"warm": "Yes"}, **step(0))
    assert response.status_code == 409
    assert not Response.objects.filter(session=s1).exists()
    assert current(s1)["visit"] == 1  # still on the trial, now for step 1
    assert 'value="1"' in page(ann, s1)
    assert post(ann, s1, {"warm": "Yes"}, **step(1)).status_code == 302
    assert Response.objects.get(session=s1).step == 1


def test_kicked_participant_sees_removed_page(session_of, staff):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_kick(group_session=gs, participant=s1.group_membership.pseudonym, by=staff)
    assert "no longer in this group session" in page(ann, s1)


def test_exit_loop_leaves_after_answering(session_of, staff, post):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    services.group_session_exit_loop(group_session=gs, by=staff)
    post(ann, s1, {"warm": "Yes"}, **step(0))
    assert current(s1) == {} or current(s1)["order"] == 2  # past the loop: the end form


def test_should_leave_loop_when_exit_comes_after_the_answer(session_of, staff, post):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    post(ann, s1, {"warm": "Yes"}, **step(0))
    assert not should_leave_loop(s1)
    services.group_session_exit_loop(group_session=gs, by=staff)
    assert should_leave_loop(s1)


def test_stimulus_script_sees_the_current_step(lockstep_experiment, session_of, staff):
    position = lockstep_experiment.experiment_forms.get(order=1)
    position.stimulus_script = "tests.groups.lockstep_scripts.color_trial"
    position.save()
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    html = page(ann, s1)
    assert "live-initial" in html and "red" in html  # the live page's first step, timeline included
    services.group_session_advance(group_session=gs, step=0, by=staff)
    html = page(ann, s1)
    raw = re.search(r'id="live-initial"[^>]*>(.*?)</script>', html, re.S).group(1)
    timeline = json.loads(raw)["content"]["timeline"]
    assert "green" in timeline[0]["stimulus"]


def test_after_the_end_participants_move_past_the_loop(session_of, staff):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    assert not should_leave_loop(s1)
    services.group_session_end(group_session=gs, by=staff)
    assert should_leave_loop(s1)
    html = page(ann, s1)
    assert 'name="q-warm"' not in html and "data-end-page" in html
    s1.refresh_from_db()
    assert s1.end is not None  # the end form finished the run


def test_exit_loop_releases_those_already_waiting(session_of, staff, post):
    gs = session_of.gs
    (ann, s1), (bob, s2) = session_of(), session_of()
    services.group_session_start(group_session=gs, by=staff)
    post(ann, s1, {"warm": "Yes"}, **step(0))
    assert "Waiting for the others" in page(ann, s1)
    services.group_session_exit_loop(group_session=gs, by=staff)
    assert "data-end-page" in page(ann, s1)  # ann answered the exit step: out of the loop
    assert 'name="q-warm"' in page(bob, s2)  # bob still answers it, then leaves too
    post(bob, s2, {"warm": "No"}, **step(0))
    assert "data-end-page" in page(bob, s2)


def test_failing_stimulus_script_shows_the_error_page(lockstep_experiment, session_of, staff):
    ann, s1 = session_of()  # entered the trial before the script broke
    position = lockstep_experiment.experiment_forms.get(order=1)
    position.stimulus_script = "tests.groups.lockstep_scripts.broken"
    position.save()
    services.group_session_start(group_session=session_of.gs, by=staff)
    html = page(ann, s1)
    assert 'data-error-code="callback_failed"' in html and 'name="q-warm"' not in html


def test_clock_offset_estimated_over_the_socket_is_kept_with_the_session(session_of, staff, post):
    """The trial page posts the socket's estimate (group_participant.js): the one with
    the shortest round trip replaces the one-off estimate of the first POST."""
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    clock = {"_clock_offset_ms": "-1234.5", "_clock_rtt_ms": "40"}
    assert post(ann, s1, {"warm": "Yes"}, **step(0), **clock).status_code == 302
    s1.refresh_from_db()
    assert s1.clock_offset_ms == -1234.5 and s1.state["clock"] == {"via": "socket", "offset_ms": -1234.5, "rtt_ms": 40}
    services.group_session_advance(group_session=gs, step=0, by=staff)
    post(ann, s1, {"warm": "No"}, **step(1), _clock_offset_ms="999", _clock_rtt_ms="80")  # slower: ignored
    s1.refresh_from_db()
    assert s1.clock_offset_ms == -1234.5
    services.group_session_advance(group_session=gs, step=1, by=staff)
    post(ann, s1, {"warm": "No"}, **step(2), _clock_offset_ms="-1200", _clock_rtt_ms="12")  # better
    s1.refresh_from_db()
    assert (s1.clock_offset_ms, s1.state["clock"]["rtt_ms"]) == (-1200, 12)
    assert Response.objects.filter(session=s1).count() == 3


@pytest.mark.parametrize("offset, rtt", [("nan", "10"), ("1e300", "10"), ("5", "-1"), ("", ""), ("x", "1")])
def test_unusable_clock_estimates_are_ignored(session_of, staff, post, offset, rtt):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    post(ann, s1, {"warm": "Yes"}, **step(0), _clock_offset_ms=offset, _clock_rtt_ms=rtt)
    s1.refresh_from_db()
    assert "clock" not in s1.state
    assert s1.clock_offset_ms < -1e10  # the one-off estimate from _client_ms (a 2023 clock in submit())


def test_the_trial_page_carries_the_clock_fields(session_of, staff):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    html = page(ann, s1)
    assert 'name="_clock_offset_ms" value=""' in html and 'name="_clock_rtt_ms"' in html


def test_every_state_change_and_answer_carries_a_server_timestamp_in_ms(session_of, staff, post):
    import time

    from groups import selectors
    from groups.models import GroupSession, StepLog

    gs = session_of.gs
    (ann, s1), (bob, s2) = session_of(), session_of()
    began = int(time.time() * 1000)
    stamps = [selectors.snapshot(gs.pk)["server_ms"]]
    for change in (
        lambda: services.group_session_start(group_session=gs, by=staff),
        lambda: post(ann, s1, {"warm": "Yes"}, **step(0)),
        lambda: post(bob, s2, {"warm": "No"}, **step(0)),
        lambda: services.group_session_advance(group_session=gs, step=0, by=staff),
        lambda: post(ann, s1, {"warm": "No"}, **step(1)),
        lambda: services.group_session_pause(group_session=gs, by=staff),
    ):
        before = int(time.time() * 1000)
        change()
        state = selectors.snapshot(gs.pk)
        assert isinstance(state["server_ms"], int) and before <= state["server_ms"] <= time.time() * 1000
        assert state["server_ms"] == GroupSession.objects.get(pk=gs.pk).changed_ms
        stamps.append(state["server_ms"])
    assert stamps == sorted(stamps)
    log = {(row.action, row.step): row for row in StepLog.objects.filter(group_session=gs)}
    assert set(log) == {("started", 0), ("advanced", 1), ("paused", 1)}
    for row in log.values():
        assert began <= row.at_ms <= stamps[-1] and int(row.at.timestamp() * 1000) == row.at_ms
    answers = list(Response.objects.filter(group_session=gs))
    assert len(answers) == 3
    for answer in answers:  # stored while its step was current, by the server's clock
        submitted_ms = answer.submitted_at.timestamp() * 1000
        assert log[("started", 0) if answer.step == 0 else ("advanced", 1)].at_ms <= submitted_ms + 1
        assert submitted_ms <= stamps[-1] + 1


def test_rejoin_after_advance_anyway_is_on_the_groups_round(session_of, staff, post):
    """Bob closes his tab during step 1; the experimenter advances anyway to step 2. Back,
    Bob gets step 2's trial labelled with the group's round (3 of 3, not 2 of 3), his answer
    is stored with that visit, and his loop ends with the group's."""
    gs = session_of.gs
    (ann, s1), (bob, s2) = session_of(), session_of()
    services.group_session_start(group_session=gs, by=staff)
    post(ann, s1, {"warm": "Yes"}, **step(0))
    post(bob, s2, {"warm": "No"}, **step(0))
    services.group_session_advance(group_session=gs, step=0, by=staff)
    assert "Round 2 of 3" in page(bob, s2)  # then the tab closes
    post(ann, s1, {"warm": "Yes"}, **step(1))
    services.group_session_advance(group_session=gs, step=1, by=staff)  # "advance anyway"
    html = page(bob, s2)
    assert "Round 3 of 3" in html and 'name="q-_group_step"' in html and 'value="2"' in html
    assert current(s2)["visit"] == 3
    assert post(bob, s2, {"warm": "Yes"}, **step(2)).status_code == 302
    assert "Round 3 of 3" in page(ann, s1)
    post(ann, s1, {"warm": "No"}, **step(2))
    rows = Response.objects.filter(group_session=gs, item="warm")
    assert sorted((r.session_id == s2.pk, r.step, r.visit) for r in rows) == [
        (False, 0, 1), (False, 1, 2), (False, 2, 3), (True, 0, 1), (True, 2, 3)
    ]  # fmt: skip
    for client, session in ((ann, s1), (bob, s2)):  # the loop of three is over for both
        assert "Round" not in page(client, session) and current(session)["order"] == 2


def test_a_participant_in_step_is_not_skipped(session_of, staff, post):
    gs = session_of.gs
    ann, s1 = session_of()
    services.group_session_start(group_session=gs, by=staff)
    post(ann, s1, {"warm": "Yes"}, **step(0))
    services.group_session_advance(group_session=gs, step=0, by=staff)
    assert "Round 2 of 3" in page(ann, s1) and current(s1)["visit"] == 2
