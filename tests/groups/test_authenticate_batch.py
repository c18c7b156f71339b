"""Participant sockets that connect together are authenticated together
(selectors.authenticate_participants): the same answer per socket as one at a time,
in two queries however many connect."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groups import selectors, services
from groups.state import GroupError
from runner.models import Ticket
from tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def _cookie(gs, session):
    return {f"{settings.RUN_COOKIE_NAME}{gs.experiment_id}": session.run_token}


def _outcome(result):
    return result.code if isinstance(result, GroupError) else (result.group_session_id, result.pseudonym)


def test_a_batch_answers_each_socket_as_one_at_a_time(gs, join, staff, experiment):
    (s1, m1), (s2, m2), (s3, _) = join(), join(), join()
    services.group_session_kick(group_session=gs, participant=m2.pseudonym, by=staff)
    other = services.start_group_session(experiment=experiment, size=2, experimenter=staff)
    stranger = SessionFactory(experiment=experiment, ticket=Ticket.objects.get(pk=other.ticket_id))
    requests = [
        (gs.pk, _cookie(gs, s1)),  # ok
        (gs.pk, _cookie(gs, s2)),  # kicked
        (other.pk, _cookie(other, s3)),  # forbidden: another group session's run
        (gs.pk, _cookie(gs, stranger)),  # a run in no group session
        (gs.pk, {f"{settings.RUN_COOKIE_NAME}{gs.experiment_id}": "no-such-token"}),
        (gs.pk, {}),  # no cookie
        (gs.pk, {"sessionid": "x"}),
        (987654, _cookie(gs, s1)),  # no such group session
        (gs.pk, {f"{settings.RUN_COOKIE_NAME}{gs.experiment_id}": ["not", "a", "string"]}),
        (gs.pk, _cookie(gs, s1)),  # the same run twice (two tabs)
    ]
    batch = [_outcome(r) for r in selectors.authenticate_participants(requests)]
    singles = []
    for gs_id, cookies in requests:
        try:
            singles.append(_outcome(selectors.authenticate_participant(group_session_id=gs_id, cookies=cookies)))
        except GroupError as exc:
            singles.append(exc.code)
    assert batch == singles
    assert batch == [
        (gs.pk, m1.pseudonym), "kicked", "forbidden", "forbidden", "unauthenticated", "unauthenticated",
        "unauthenticated", "not_found", "unauthenticated", (gs.pk, m1.pseudonym),
    ]  # fmt: skip


@pytest.mark.parametrize("n", [1, 40])
def test_two_queries_whatever_the_number_of_sockets(gs, join, n):
    requests = [(gs.pk, _cookie(gs, join()[0])) for _ in range(n)]
    with CaptureQueriesContext(connection) as queries:
        results = selectors.authenticate_participants(requests)
    assert len(queries) == 2 and all(not isinstance(r, GroupError) for r in results)
