"""Two simultaneous POSTs of the same visit (PostgreSQL, real row locks): one set of rows."""

import threading

import pytest
from django.db import connection

from runner.models import Response, Session
from runner.services import submit_form

from .builders import build_experiment, current, start

pytestmark = [pytest.mark.postgres]


def test_simultaneous_double_submit_stores_once(transactional_db, client):
    experiment = build_experiment([{"name": "one", "questions": [{"key": "likes"}]},
                                   {"name": "two", "questions": [{"key": "again"}]}])
    session = start(client, experiment)
    cur = current(session)
    barrier = threading.Barrier(4)
    results = []

    def post(answer):
        try:
            barrier.wait()
            result = submit_form(session_id=session.pk, order=cur["order"], visit=cur["visit"], nonce=cur["nonce"],
                                 data={"q-likes": answer})
            results.append(result.kind)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(a,)) for a in ("Yes", "No", "Yes", "No")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["duplicate", "duplicate", "duplicate", "stored"]
    assert Response.objects.filter(session=session, item="likes").count() == 1
    assert Session.objects.get(pk=session.pk).state["current"]["order"] == 2
