"""The live page's side of a step timer (issue 20, ``on_timeout: submit``): the content
says what the page does when time runs out; once the server's timer closed the step,
the page's answer flagged ``_timed_out`` is stored with what was filled (required fields
relaxed, the rest missing); the flag changes nothing before the timer ran out."""

from __future__ import annotations

import pytest

from groups import services, timers
from groups.models import Membership, Timer
from runner.models import ExperimentXForm, Response
from tests.groups.test_live import answer, experiment, group  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def timed(experiment, **flow):  # noqa: F811 - the fixture's experiment
    ExperimentXForm.objects.filter(experiment=experiment, handler="group_trial").update(flow=flow)
    experiment.save()


def run_out():
    Timer.objects.filter(kind="timeout", fired_ms__isnull=True).update(due_ms=timers.now_ms() - 1)
    return timers.fire_due("test")


def test_a_timed_out_answer_is_stored_with_what_was_filled(experiment, group, staff):  # noqa: F811
    timed(experiment, timeout_seconds=5, on_timeout="submit")
    (c1, s1), (c2, s2) = group(), group()
    services.group_session_start(group_session=group.gs, by=staff)
    content = c1.get(f"/group/live/{experiment.pk}/content/").json()["content"]
    assert content["on_timeout"] == "submit"
    early = answer(c1, s1, warm=None, _timed_out="1")  # the flag alone relaxes nothing
    assert early.status_code == 400 and early.json()["code"] == "invalid"
    assert run_out() >= 1
    assert set(Membership.objects.values_list("flag", flat=True)) == {"timed_out"}
    unflagged = answer(c2, s2, warm=None)
    assert unflagged.status_code == 400 and "warm" in unflagged.json()["errors"]
    reply = answer(c1, s1, warm=None, _timed_out="1")
    assert reply.status_code == 200 and reply.json()["stored"], reply.content
    rows = list(Response.objects.filter(session=s1, step=0).values_list("item", "value"))
    assert rows == [("warm", "")]  # stored as missing (the runner's empty answer), not invented
    filled = answer(c2, s2, warm="No", _timed_out="1")  # what is filled is kept
    assert filled.status_code == 200
    assert Response.objects.get(session=s2, item="warm").value == "No"


def test_at_the_deadline_before_the_timer_fired_the_flagged_answer_is_taken(experiment, group, staff):  # noqa: F811
    """The page sends at the deadline on its clock; the server's timer may fire a moment later."""
    from groups.models import GroupSession

    timed(experiment, timeout_seconds=5, on_timeout="submit")
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    GroupSession.objects.filter(pk=group.gs.pk).update(deadline_ms=timers.now_ms() - 1)
    assert answer(client, session, warm=None).status_code == 400  # unflagged: required as ever
    reply = answer(client, session, warm=None, _timed_out="1")
    assert reply.status_code == 200 and reply.json()["stored"]
    assert Response.objects.get(session=session, item="warm").value == ""


def test_an_untimed_step_says_so_and_skip_is_carried(experiment, group, staff):  # noqa: F811
    client, _session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    assert client.get(f"/group/live/{experiment.pk}/content/").json()["content"]["on_timeout"] is None
    timed(experiment, timeout_seconds=5, on_timeout="skip")
    from groups import live_content
    from runner.models import ExperimentXForm as Position

    assert live_content.on_timeout(Position.objects.get(experiment=experiment, handler="group_trial")) == "skip"
