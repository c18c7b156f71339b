"""realtime alone: the hub and the publisher work from what the registered ports hand
them (text in the wire form), with no groups module involved (issue 15)."""

from __future__ import annotations

import asyncio
import json

import pytest

from realtime import frames, ports, publish
from realtime.broadcast import Hub


class FakeSocket:
    def __init__(self):
        self.pushed: list[frames.Frames] = []

    async def push(self, sent, *, force=False):
        self.pushed.append(sent)


def _body(version: int) -> str:
    shared = {"type": "group.state", "version": version, "step": version - 1}
    return frames.encode(version, version, shared, [("P1", "answering", None)], {**shared, "secret": 1})


@pytest.fixture
def fake_ports():
    before = ports._registered
    reads: list[int] = []

    def read_body(group_session_id: int) -> str:
        reads.append(group_session_id)
        return _body(3)

    def refuse(*args, **kwargs):
        raise AssertionError("not called in these tests")

    ports.register(ports.GroupPorts(read_body, refuse, refuse, {}, refuse, refuse, refuse, refuse, refuse, refuse))
    yield reads
    ports.register(before)


async def test_the_hub_reads_through_the_ports_and_delivers_each_receiver_its_text(fake_ports, settings):
    settings.REDIS_URL = ""
    hub = Hub(asyncio.get_running_loop())
    socket = FakeSocket()
    hub.sockets[7].add(socket)
    current = await hub.current(7)
    assert fake_ports == [7] and current.version == 3
    me = {"id": "P1", "status": "answering", "responded_step": None}
    assert json.loads(current.participant("P1")) == {"type": "group.state", "version": 3, "step": 2, "me": me}
    assert json.loads(current.participant("PGONE"))["me"]["status"] == frames.ABSENT_STATUS
    assert json.loads(current.experimenter)["secret"] == 1
    await hub.deliver_text(f"7\n{_body(4)}")
    await hub.deliver_text(f"7\n{_body(4)}")  # a version already delivered is not pushed again
    assert [f.version for f in socket.pushed] == [4]


def test_publish_now_publishes_what_the_ports_read(fake_ports, settings, monkeypatch):
    settings.REDIS_URL = ""
    sent = []
    monkeypatch.setattr(publish, "publish_text", lambda gs_id, body: sent.append((gs_id, body)))
    publish.publish_now(9)
    assert fake_ports == [9] and sent == [(9, _body(3))]


async def test_the_consoles_view_follows_the_participants_part_of_the_same_version(fake_ports, settings):
    """A snapshot published with an empty experimenter's view (the participants' part first)
    reaches the pages at once; its ``console_body`` completes it for the consoles; one of an
    older version than the hub holds changes nothing."""
    settings.REDIS_URL = ""
    hub = Hub(asyncio.get_running_loop())
    socket = FakeSocket()
    hub.sockets[7].add(socket)
    shared = {"type": "group.state", "version": 5, "step": 4}
    await hub.deliver_text(f"7\n{frames.encode(5, 5, shared, [('P1', 'answering', None)], None)}")
    held = hub.frames[7]
    assert [f.version for f in socket.pushed] == [5] and held.console_pending
    assert json.loads(held.participant("P1"))["step"] == 4
    await hub.deliver_text(f"7\n{frames.console_body(4, {'old': True})}")  # not this version: dropped
    assert held.console_pending and len(socket.pushed) == 1
    await hub.deliver_text(f"7\n{frames.console_body(5, {**shared, 'secret': 2})}")
    assert not held.console_pending and json.loads(held.experimenter)["secret"] == 2
    assert socket.pushed == [held, held]  # pushed again: a console sends it now, a page sent it already
    await hub.deliver_text(f"7\n{frames.console_body(5, {'twice': True})}")  # complete already: kept
    assert json.loads(held.experimenter)["secret"] == 2 and len(socket.pushed) == 2
