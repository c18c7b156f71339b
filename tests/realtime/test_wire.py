"""realtime.wire: the hub's frames written straight onto daphne's socket.

The frame bytes are checked with the ``websockets`` library's own parser (a strict
RFC 6455 implementation); the writer's decisions (direct, behind queued bytes, the
rest of a partial send, refuse) with a real socket pair under a stand-in protocol.
The path through a real daphne is exercised by every e2e test (tests/e2e), whose
clients are Chromium and ``websockets``: both reject a malformed frame."""

from __future__ import annotations

import asyncio
import functools
import socket

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from realtime.wire import RAW_SEND_KEY, DirectWriter, RawSend, direct_writer, text_frame


def _parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        while True:
            next(parser)
    except StopIteration as done:
        return done.value


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frames_of_every_length_class_parse(size):
    payload = ("é" * (size // 2) + "a" * (size % 2)).encode()
    assert len(payload) == size
    frame = _parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)


class _Transport:
    """What DirectWriter touches of a Twisted TCP transport, over a real socket."""

    def __init__(self, sock):
        self.socket = sock
        self.connected, self.disconnecting = True, False
        self.dataBuffer, self._tempDataBuffer = b"", []
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self._tempDataBuffer.append(data)


class _Protocol:
    STATE_OPEN, STATE_CLOSING = 1, 2
    SEND_STATE_GROUND, SEND_STATE_INSIDE_MESSAGE = 0, 2

    def __init__(self, transport):
        self.transport = transport
        self.state, self.send_state = self.STATE_OPEN, self.SEND_STATE_GROUND
        self._perMessageCompress = None
        self.send_queue = []


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.settimeout(2)
    yield a, b
    a.close()
    b.close()


def _received(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def test_an_idle_connection_gets_the_frame_from_the_kernel_at_once(pair):
    ours, peer = pair
    transport = _Transport(ours)
    writer = DirectWriter(_Protocol(transport))
    assert writer.write_text('{"type":"group.state","version":3}')
    expected = text_frame(b'{"type":"group.state","version":3}')
    assert _received(peer, len(expected)) == expected
    assert transport.written == [] and (writer.direct, writer.buffered) == (1, 0)


def test_a_state_and_its_content_go_as_two_frames_in_one_write(pair):
    """The fan-out of a step's first state writes the step's content with it (one system call
    per socket): the client still reads two whole frames, in order."""
    ours, peer = pair
    transport = _Transport(ours)
    writer = DirectWriter(_Protocol(transport))
    state, content = (
        text_frame(b'{"type":"group.state"}'),
        text_frame(b'{"type":"group.content","x":"' + b"y" * 300 + b'"}'),
    )
    assert writer.write_frames(state + content)
    received = _received(peer, len(state) + len(content))
    assert _parse(received[: len(state)]).data == b'{"type":"group.state"}'
    assert _parse(received[len(state) :]).data.startswith(b'{"type":"group.content"')
    assert (writer.direct, writer.buffered) == (1, 0)


def test_bytes_already_queued_go_first(pair):
    ours, peer = pair
    transport = _Transport(ours)
    transport._tempDataBuffer = [b"earlier"]
    protocol = _Protocol(transport)
    writer = DirectWriter(protocol)
    assert writer.write_text("x")
    assert transport.written == [text_frame(b"x")]  # behind what Twisted holds, nothing on the socket
    transport._tempDataBuffer = []
    protocol.send_queue = [(b"autobahn's", False)]
    assert writer.write_text("y") and transport.written[-1] == text_frame(b"y")
    peer.settimeout(0.1)
    with pytest.raises(TimeoutError):
        peer.recv(1)


def test_what_the_kernel_does_not_take_goes_to_twisted(pair):
    ours, peer = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = _Transport(ours)
    writer = DirectWriter(_Protocol(transport))
    text = "z" * 2_000_000  # far more than the socket buffer holds
    assert writer.write_text(text)
    frame = text_frame(text.encode())
    assert len(transport.written) == 1 and 0 < len(transport.written[0]) < len(frame)
    sent = len(frame) - len(transport.written[0])
    assert _received(peer, sent) + transport.written[0] == frame  # together, the frame once, in order
    assert writer.buffered == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda p: setattr(p, "state", p.STATE_CLOSING),
        lambda p: setattr(p, "send_state", p.SEND_STATE_INSIDE_MESSAGE),
        lambda p: setattr(p, "_perMessageCompress", object()),
        lambda p: setattr(p.transport, "disconnecting", True),
        lambda p: setattr(p.transport, "connected", False),
    ],
    ids=["closing", "mid-message", "compressed", "disconnecting", "disconnected"],
)
def test_refuses_where_only_the_asgi_send_knows_what_to_do(pair, change):
    ours, _ = pair
    protocol = _Protocol(_Transport(ours))
    change(protocol)
    assert DirectWriter(protocol).write_text("x") is False
    assert protocol.transport.written == []


def test_a_vanished_peer_leaves_the_frame_to_twisted(pair):
    ours, peer = pair
    peer.close()
    transport = _Transport(ours)
    writer = DirectWriter(_Protocol(transport))
    for _ in range(3):  # the first send may still succeed; then EPIPE/ECONNRESET
        assert writer.write_text("x")
    assert writer.direct + writer.buffered == 3


async def test_raw_send_keeps_the_servers_send_in_the_scope():
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    async def server_send(message):
        pass

    await RawSend(inner)({"type": "websocket", "path": "/"}, None, server_send)
    assert seen[RAW_SEND_KEY] is server_send


def test_no_direct_writer_outside_daphne():
    assert direct_writer({}) is None
    assert direct_writer({RAW_SEND_KEY: lambda message: None}) is None  # e.g. channels' test communicator
    assert direct_writer({RAW_SEND_KEY: functools.partial(print, object())}) is None


@pytest.fixture
def daphne_protocol():
    """daphne's own WebSocket protocol, opened on a real Twisted TCP transport over a
    socket pair (as daphne's listening port would build it); the peer end too."""
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketFactory
    from twisted.internet import reactor, tcp

    server = Server.__new__(Server)  # only its handle_reply is referred to
    protocol = WebSocketFactory(server).buildProtocol(("127.0.0.1", 1))
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(2)
    protocol.makeConnection(tcp.Server(ours, protocol, ("127.0.0.1", 1), None, 1, reactor))
    protocol.state = protocol.STATE_OPEN  # the handshake done
    yield server, protocol, peer
    for call in reactor.getDelayedCalls():  # the handshake timeout autobahn set
        call.cancel()
    ours.close()
    peer.close()


def test_daphne_connections_on_plain_tcp_get_a_direct_writer(daphne_protocol):
    """The layout of daphne, autobahn and Twisted that the fast path relies on: if a
    new release changes it, this fails (the hub would silently fall back to the
    slower ASGI send)."""
    server, protocol, peer = daphne_protocol
    writer = direct_writer({RAW_SEND_KEY: functools.partial(server.handle_reply, protocol)})
    assert writer is not None
    assert writer.write_text("hello") and _received(peer, 7) == text_frame(b"hello") and writer.direct == 1


def test_no_direct_writer_for_a_wrapped_transport(daphne_protocol):
    """TLS (or any transport that is not Twisted's plain TCP connection) keeps the ASGI send."""
    from twisted.internet.testing import StringTransport

    server, protocol, _ = daphne_protocol
    protocol.transport = StringTransport()
    assert direct_writer({RAW_SEND_KEY: functools.partial(server.handle_reply, protocol)}) is None


async def test_a_frame_sent_after_the_client_left_is_dropped_quietly(caplog):
    """A state or resend racing a client's close: daphne's send raises autobahn's
    "Attempt to send on a closed protocol"; the consumer drops that frame and logs it at
    debug (the disconnect bookkeeping follows), where it used to end in an ERROR log
    (an unretrieved task exception or "group socket ... failed"). Other failures still raise."""
    import logging

    from autobahn.exception import Disconnected

    from realtime.consumers import ParticipantConsumer

    consumer = ParticipantConsumer()
    consumer.gs_id = 7

    async def closed_send(message):
        raise Disconnected("Attempt to send on a closed protocol")

    consumer.base_send = closed_send
    with caplog.at_level(logging.DEBUG, logger="realtime.consumers"):
        await consumer.send(text_data='{"type":"group.state"}')
        await asyncio.ensure_future(consumer.send(text_data="x"))  # the hub timer's resend path
    assert [r.levelname for r in caplog.records if "client is leaving" in r.getMessage()] == ["DEBUG", "DEBUG"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def broken_send(message):
        raise ValueError("not a closed socket")

    consumer.base_send = broken_send
    with pytest.raises(ValueError, match="not a closed socket"):
        await consumer.send(text_data="x")
