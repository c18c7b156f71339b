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
    assert f"/ws/group/{session_of.gs.pk}/participant/" in html and "group_participant.js" in html


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
    assert "jspsych-timeline" in html and "red" in html
    services.group_session_advance(group_session=gs, step=0, by=staff)
    html = page(ann, s1)
    raw = re.search(r'id="jspsych-timeline"[^>]*>(.*?)</script>', html, re.S).group(1)
    timeline = json.loads(raw)
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
