"""What one lockstep answer costs the server does not grow with the group: the same
queries for a group of 3 and of 40 (500 answers at once must not cost N squared), and
the group session is locked for a few statements at the end of the answer only."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from groups import services, store
from tests.runner.builders import build_lockstep_experiment, start

pytestmark = pytest.mark.django_db

_FIELD = re.compile(r'name="(_order|_visit|_nonce|q-_group_step)"[^>]*?value="([^"]*)"')


def _answer_queries(size: int, staff) -> list[str]:
    experiment = build_lockstep_experiment(5, group_flow="tests.groups.flow_fixture")
    gs = services.start_group_session(experiment=experiment, experimenter=staff)
    clients = [Client() for _ in range(size)]
    for client in clients:
        start(client, experiment, gs.ticket)
    services.group_session_start(group_session=gs, by=staff)
    form = dict(_FIELD.findall(clients[0].get(f"/run/{experiment.pk}/").content.decode()))
    with CaptureQueriesContext(connection) as queries:
        response = clients[0].post(f"/run/{experiment.pk}/", {**form, "q-warm": "Yes"})
    assert response.status_code == 302
    return [q["sql"] for q in queries.captured_queries]


def test_an_answer_costs_the_same_queries_in_a_small_and_a_large_group(staff, flow):
    small, large = _answer_queries(3, staff), _answer_queries(40, staff)
    assert len(small) == len(large)
    for a, b in zip(small, large, strict=True):  # no statement lists the group's members
        if '"context" =' not in a:  # (the fixture's hooks keep a key per member in the context)
            assert len(b) <= len(a) + 20, b
    print(len(small), *small, sep="\n")


@pytest.mark.postgres
def test_the_last_answer_check_never_scans_every_run(gs, join):
    """With many runs stored (and statistics that do not know it yet), the check reads this
    group's memberships by index and each run by primary key; an EXISTS version of it was
    planned as a scan of every run (46 ms per answer, under the lock, at 20,000 runs)."""
    from runner.models import Session
    from tests.factories import SessionFactory

    session, membership = join()
    SessionFactory.create_batch(300, experiment=gs.experiment)
    sql, params = store.still_answering_query(gs.pk, 0, exclude=membership.pk)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Seq Scan on {Session._meta.db_table}" not in plan, plan
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.fetchone() is None  # the only member is the one answering
