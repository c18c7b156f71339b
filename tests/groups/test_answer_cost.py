"""What one lockstep answer costs the server does not grow with the group: the same
queries for a group of 3 and of 40 (500 answers at once must not cost N squared), and
the group session is locked for a few statements at the end of the answer only."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from groups import services
from tests.runner.builders import build_experiment, start

pytestmark = pytest.mark.django_db

_FIELD = re.compile(r'name="(_order|_visit|_nonce|q-_group_step)"[^>]*?value="([^"]*)"')


def _answer_queries(size: int, staff) -> list[str]:
    experiment = build_experiment(
        [{"name": "trial", "handler": "group_trial", "questions": [{"key": "warm", "choices": ["Yes", "No"]}],
          "repeat": 5, "goto": 1},
         {"name": "end", "handler": "form_end_session"}],
        is_group=True, group_flow="tests.groups.flow_fixture",
    )  # fmt: skip
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
