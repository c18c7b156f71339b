"""Two simultaneous POSTs of the same visit (PostgreSQL, real row locks): one set of rows."""

import threading

import pytest

from runner.models import Response, Session
from runner.services import submit_form
from tests.threads import in_threads

from .builders import build_experiment, current, start

pytestmark = [pytest.mark.postgres]


def test_simultaneous_double_submit_stores_once(transactional_db, client):
    experiment = build_experiment(
        [{"name": "one", "questions": [{"key": "likes"}]}, {"name": "two", "questions": [{"key": "again"}]}]
    )
    session = start(client, experiment)
    cur = current(session)
    barrier = threading.Barrier(4)
    results = []

    def post(answer):
        barrier.wait()
        result = submit_form(
            session_id=session.pk, order=cur["order"], visit=cur["visit"], nonce=cur["nonce"], data={"q-likes": answer}
        )
        results.append(result.kind)

    in_threads([lambda a=a: post(a) for a in ("Yes", "No", "Yes", "No")])
    assert sorted(results) == ["duplicate", "duplicate", "duplicate", "stored"]
    assert Response.objects.filter(session=session, item="likes").count() == 1
    assert Session.objects.get(pk=session.pk).state["current"]["order"] == 2
