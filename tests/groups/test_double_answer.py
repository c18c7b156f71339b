"""One answer per participant and step (issue 20): the runner's visit nonce makes a
repeated POST of one visit a duplicate, and the group refuses another visit of the same
run posted for a step it already answered (``already_answered``: nothing stored, the
page reads why). The one exception is the page's answer after a ``submit`` timeout
closed the step: taken once. Through the live page's answer route, on PostgreSQL +
Redis and SQLite alike, also when the two visits are posted at the same moment."""

from __future__ import annotations

import threading
import time
import types

import pytest
from django.test import Client

from groups import services
from groups.models import Membership
from runner import progress
from runner.models import Response
from tests.groups import flow_fixture
from tests.groups.test_live import answer, experiment, group  # noqa: F401 - fixtures
from tests.groups.test_live_timeout import run_out, timed
from tests.runner.builders import current
from tests.threads import in_threads

pytestmark = pytest.mark.django_db


def rows(session, step=0) -> int:
    return Response.objects.filter(session=session, step=step).count()


def test_a_second_visit_for_an_answered_step_is_refused_and_stores_nothing(group, staff):  # noqa: F811
    (c1, s1), (_c2, _s2) = group(), group()
    services.group_session_start(group_session=group.gs, by=staff)
    first = current(s1)
    assert answer(c1, s1, warm="Yes").json()["stored"]
    second = current(s1)  # the loop's next visit of the same form: the group is still at step 0
    assert (second["order"], second["visit"]) == (first["order"], first["visit"] + 1)
    reply = answer(c1, s1, warm="No")
    assert reply.status_code == 409 and reply.json()["code"] == "already_answered"
    assert "already stored" in reply.json()["message"] and "not stored" in reply.json()["message"]
    assert rows(s1) == 1 and Response.objects.get(session=s1, step=0).value == "Yes"
    assert current(s1) == second  # the run did not move on either
    duplicate = answer(c1, s1, warm="Yes", ident=first).json()  # the first visit again: the runner's duplicate
    assert duplicate["ok"] and not duplicate["stored"] and rows(s1) == 1


def test_the_late_answer_after_a_submit_timeout_is_stored_once(experiment, group, staff):  # noqa: F811
    timed(experiment, timeout_seconds=5, on_timeout="submit")
    (c1, s1), (c2, s2) = group(), group()
    services.group_session_start(group_session=group.gs, by=staff)
    assert answer(c2, s2, warm="Yes").json()["stored"]  # in time
    assert run_out() >= 1
    assert Membership.objects.get(session=s1).flag == "timed_out"
    hooks_before = [call[0] for call in flow_fixture.CALLS]
    late = answer(c1, s1, warm=None, _timed_out="1")  # the page sends what is filled
    assert late.status_code == 200 and late.json()["stored"], late.content
    hooks = [call[0] for call in flow_fixture.CALLS][len(hooks_before) :]
    assert hooks == ["on_response"]  # the timeout completed the step: no second on_all_responded
    assert Membership.objects.get(session=s1).flag == "late_answer"
    again = answer(c1, s1, warm="No", _timed_out="1")  # a real answer from another visit after it
    assert again.status_code == 409 and again.json()["code"] == "already_answered"
    answered_in_time = answer(c2, s2, warm="No", _timed_out="1")  # the timer did not reopen theirs
    assert answered_in_time.json()["code"] == "already_answered"
    assert (rows(s1), rows(s2)) == (1, 1)
    assert Response.objects.get(session=s1, step=0).value == ""


def _race(group, staff, monkeypatch, *, second_after: float) -> tuple:  # noqa: F811
    """Post visit 1 and visit 2 of one run for step 0 from two browsers at once (the
    nonce of every visit made the same, so the second visit's POST can be written
    before it exists); ``second_after`` delays the second POST."""
    monkeypatch.setattr(progress, "secrets", types.SimpleNamespace(token_urlsafe=lambda n: "same-nonce"))
    (c1, s1), (_c2, _s2) = group(), group()
    services.group_session_start(group_session=group.gs, by=staff)
    first = current(s1)
    second = {**first, "visit": first["visit"] + 1}
    barrier, replies, lock = threading.Barrier(2, timeout=10), {}, threading.Lock()

    def post(name, ident, warm, delay):
        client = Client()
        client.cookies = c1.cookies
        barrier.wait()
        time.sleep(delay)
        reply = answer(client, s1, warm=warm, ident=ident)
        with lock:
            replies[name] = (reply.status_code, reply.json().get("code", "stored"))

    in_threads([lambda: post("first", first, "Yes", 0), lambda: post("second", second, "No", second_after)])
    return s1, replies


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second_after", [0.0, 0.05])
def test_two_visits_posted_at_once_store_one_answer(group, staff, monkeypatch, second_after):  # noqa: F811
    s1, replies = _race(group, staff, monkeypatch, second_after=second_after)
    stored = [name for name, (status, _) in replies.items() if status == 200]
    assert stored == ["first"], replies  # the second visit did not exist yet, or its step was answered
    assert replies["second"][1] in ("already_answered", "stale_visit"), replies
    assert rows(s1) == 1 and Response.objects.get(session=s1, step=0).value == "Yes"
    assert Membership.objects.get(session=s1).responded_step == 0
