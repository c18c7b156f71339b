"""Presence with the real settings: a participant whose browser vanished (its socket
stays open but sends nothing, not even the pings every 3 s) shows as disconnected on
the console within 10 s (SPEC 5, docs/groups.md)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from .test_consumers import state_where

pytestmark = pytest.mark.django_db(transaction=True)


def test_presence_timeout_setting_fits_the_ten_seconds():
    assert settings.GROUP_PRESENCE_TIMEOUT_SECONDS <= 8.0


async def test_a_vanished_participant_shows_offline_within_ten_seconds(world):
    boss = world.experimenter()
    await boss.connect()
    await state_where(boss, lambda s: True)
    ann = world.participant(0)
    await ann.connect()
    row = lambda s: next(p for p in s["participants"] if p["id"] == world.pseudonyms[0])  # noqa: E731
    await state_where(boss, lambda s: row(s)["connected"])
    vanished = time.monotonic()  # from now on ann sends nothing (no acks, no pings)
    while True:  # the server gives up on the silent socket: close 4008
        output = await ann.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            assert output["code"] == 4008
            break
    await ann.disconnect()  # what daphne does once the server closed the socket
    offline = await state_where(boss, lambda s: not row(s)["connected"], timeout=5)
    assert time.monotonic() - vanished <= 10.0
    assert offline["server_ms"] > 0
    await boss.disconnect()
