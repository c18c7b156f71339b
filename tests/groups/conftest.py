from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from groups import services
from runner.models import Ticket
from tests.factories import ExperimentFactory, SessionFactory, TicketFactory

from . import flow_fixture


@pytest.fixture(autouse=True)
def _context_store_health():
    """Each test starts with the context store taken as answering (a test that stopped
    a private redis-server leaves this process's back-off behind)."""
    from groups.context import _Health

    _Health.down_since, _Health.retry_at = None, 0.0
    yield
    _Health.down_since, _Health.retry_at = None, 0.0


@pytest.fixture
def flow():
    flow_fixture.CALLS.clear()
    flow_fixture.FAIL_ADVANCE["on"] = False
    yield flow_fixture
    flow_fixture.FAIL_ADVANCE["on"] = False


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True)


@pytest.fixture
def experiment(db):
    return ExperimentFactory(is_group=True, group_size=3, group_flow="tests.groups.flow_fixture", params={"k": 1})


@pytest.fixture
def gs(experiment, staff, flow):
    return services.start_group_session(experiment=experiment, group="lab A", size=2, experimenter=staff)


@pytest.fixture
def join(gs):
    """join() -> (runner session, membership) for a new participant of ``gs``."""

    def _join():
        ticket = Ticket.objects.get(pk=gs.ticket_id)
        session = SessionFactory(experiment=gs.experiment, ticket=ticket)
        return session, services.attach_participant(session=session, ticket=ticket)

    return _join


@pytest.fixture
def other_ticket(db):
    return TicketFactory(type=Ticket.Type.GROUP)
