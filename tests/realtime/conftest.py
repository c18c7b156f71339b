from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from groups import services
from realtime.asgi import websocket_application
from runner.models import Ticket
from tests.factories import ExperimentFactory, SessionFactory


def communicator(path: str, cookies: dict | None = None, origin: bytes = b"http://testserver"):
    headers = [(b"origin", origin)] if origin else []
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    return WebsocketCommunicator(websocket_application, path, headers=headers)


class World:
    """A group session with two participants and an attached experimenter."""

    def __init__(self):
        User = get_user_model()
        self.staff = User.objects.create_user("boss", password="pw-123456", is_staff=True)
        self.outsider = User.objects.create_user("other", password="pw-123456", is_staff=True)
        self.experiment = ExperimentFactory(is_group=True)
        self.gs = services.start_group_session(experiment=self.experiment, experimenter=self.staff, size=2)
        self.other_gs = services.start_group_session(experiment=self.experiment, experimenter=self.outsider)
        ticket = Ticket.objects.get(pk=self.gs.ticket_id)
        self.sessions, self.pseudonyms = [], []
        for _ in range(2):
            session = SessionFactory(experiment=self.experiment, ticket=ticket)
            self.sessions.append(session)
            self.pseudonyms.append(services.attach_participant(session=session, ticket=ticket).pseudonym)
        self.cookie_name = f"{settings.RUN_COOKIE_NAME}{self.experiment.pk}"
        self._logins = {user.pk: self._login(user) for user in (self.staff, self.outsider)}

    @staticmethod
    def _login(user):
        client = Client()
        client.force_login(user)
        return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}

    def staff_cookies(self, user=None):
        return self._logins[(user or self.staff).pk]

    def run_cookies(self, index: int):
        return {self.cookie_name: self.sessions[index].run_token}

    def experimenter(self, gs=None, user=None):
        gs = gs or self.gs
        return communicator(f"/ws/group/{gs.pk}/experimenter/", self.staff_cookies(user))

    def participant(self, index: int, gs=None):
        gs = gs or self.gs
        return communicator(f"/ws/group/{gs.pk}/participant/", self.run_cookies(index))


@pytest.fixture
def world(transactional_db, monkeypatch):
    # Joins and "ready" publish at once here, not coalesced (GROUP_READY_FLUSH_SECONDS): a
    # join's late snapshot would otherwise reach the socket a test opens right after it.
    monkeypatch.setattr(services, "READY_FLUSH_SECONDS", 0)
    return World()


@pytest.fixture
def call():
    """await call(fn, **kwargs): run a sync service/selector from an async test."""

    async def _call(fn, **kwargs):
        return await database_sync_to_async(fn)(**kwargs)

    return _call


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each async test has its own event loop; channels-redis layers bind locks to
    the loop that first used them, so every test gets a new layer instance."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
