"""The bot flag: a start link with a valid bot token of the experiment starts a run
flagged ``is_bot``; a missing, forged, expired or other experiment's token flags nothing."""

from __future__ import annotations

import pytest
from django.core import signing

from runner import bot_token
from runner.models import Session, Ticket
from tests.factories import ExperimentFactory, TicketFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment():
    return ExperimentFactory()


def _start(client, experiment, **params):
    ticket = TicketFactory(experiment=experiment, type=Ticket.Type.MASTER)
    client.cookies.clear()
    client.get(f"/run/{experiment.pk}/start/", {"tc": ticket.code, **params})
    return Session.objects.filter(ticket=ticket).first()


def test_only_a_valid_token_of_this_experiment_flags_the_run(client, experiment):
    other = ExperimentFactory()
    assert _start(client, experiment, bot=bot_token.mint(experiment.pk)).is_bot is True
    assert _start(client, experiment).is_bot is False
    assert _start(client, experiment, bot=bot_token.mint(other.pk)).is_bot is False
    assert _start(client, experiment, bot=bot_token.mint(experiment.pk) + "x").is_bot is False
    forged = signing.dumps({"experiment": experiment.pk}, salt="another-salt")
    assert _start(client, experiment, bot=forged).is_bot is False
    assert _start(client, experiment, bot="\x00" * 600).is_bot is False


def test_an_expired_token_flags_nothing(experiment, monkeypatch):
    token = bot_token.mint(experiment.pk)
    assert bot_token.is_bot(token, experiment.pk)
    monkeypatch.setattr(bot_token, "MAX_AGE_SECONDS", -1)
    assert not bot_token.is_bot(token, experiment.pk)
