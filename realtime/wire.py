"""Writing the hub's pre-serialised frames straight onto a daphne socket.

A state change reaches every socket of a group session at once. Through the ASGI
``send`` each frame passes five layers (Channels' consumer, its session wrapper,
daphne's ``handle_reply``, autobahn's ``sendMessage`` with its per-frame statistics
and logging calls) and then only lands in Twisted's write buffer: Twisted sends the
bytes in a later turn of the event loop, one ``doWrite`` per socket through its
logging and context wrappers. At 1000 sockets that is most of the time from the
transition to the last receipt (docs/performance.md).

``DirectWriter`` does what the bare ``websockets`` broadcast does: it builds the
unmasked RFC 6455 text frame itself and hands it to the kernel with one
``socket.send`` while the connection has nothing else queued, so the frame leaves
during the hub's pass. Anything the kernel does not take, and every frame while
Twisted or autobahn still hold queued bytes, goes through Twisted's own buffer, so
the order of bytes on a connection never changes.

It applies only where that is exactly equivalent: a daphne WebSocket protocol that
is open, between messages, without permessage-deflate, on a plain TCP transport
(not TLS). Anything else (tests' in-memory communicators, TLS endpoints, another
ASGI server) gets ``None`` from ``direct_writer`` and the consumer uses the ASGI
``send`` as before.

``RawSend`` is the outermost WebSocket middleware: it keeps the server's own
``send`` in the scope (``scope["ensemble.raw_send"]``), since middleware further in
wrap it.
"""

from __future__ import annotations

import functools
import logging
import struct

logger = logging.getLogger(__name__)

RAW_SEND_KEY = "ensemble.raw_send"


def _closed_errors() -> tuple[type[BaseException], ...]:
    try:
        from autobahn.exception import Disconnected
    except ImportError:  # pragma: no cover - daphne depends on autobahn
        return ()
    return (Disconnected,)


#: What daphne's ``send`` raises for a frame sent after the connection began to close
#: (the client's close frame arrived or the TCP connection dropped, and daphne has not
#: yet told the consumer): autobahn's "Attempt to send on a closed protocol".
SEND_AFTER_CLOSE = _closed_errors()


class RawSend:
    """ASGI middleware: remember the server's ``send`` callable in the scope."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        return await self.inner({**scope, RAW_SEND_KEY: send}, receive, send)


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (FIN, opcode 1) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def _daphne_protocol(send):
    """The daphne ``WebSocketProtocol`` behind ``send`` (``partial(server.handle_reply,
    protocol)``), or None."""
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # pragma: no cover - daphne is a dependency
        return None
    if not isinstance(send, functools.partial) or len(send.args) != 1:
        return None
    if getattr(send.func, "__func__", None) is not Server.handle_reply:
        return None
    protocol = send.args[0]
    return protocol if isinstance(protocol, WebSocketProtocol) else None


def _plain_tcp(transport) -> bool:
    from twisted.internet import tcp

    return (
        isinstance(transport, tcp.Connection)
        and not getattr(transport, "TLS", False)
        and hasattr(transport, "_tempDataBuffer")
        and hasattr(transport, "dataBuffer")
    )


class DirectWriter:
    """Writes text frames for one daphne WebSocket connection (see the module)."""

    __slots__ = ("protocol", "direct", "buffered")

    def __init__(self, protocol):
        self.protocol = protocol
        self.direct = 0  # frames the kernel took whole during the pass
        self.buffered = 0  # frames (or their rest) left to Twisted's buffer

    def _between_messages(self) -> bool:
        """Open, not inside a message of autobahn's, not compressed."""
        p = self.protocol
        return p.state == p.STATE_OPEN and p.send_state == p.SEND_STATE_GROUND and p._perMessageCompress is None

    def usable(self) -> bool:
        return self._between_messages() and _plain_tcp(self.protocol.transport)

    def write_text(self, text: str) -> bool:
        """Send ``text`` as one frame; False (nothing written) when this connection
        cannot take a direct frame now (closing, compressed, mid-message): the
        caller then uses the ASGI send, which knows what to do."""
        return self.write_frames(text_frame(text.encode()))

    def write_frames(self, frame: bytes) -> bool:
        """Send ``frame`` (one or more whole frames of ``text_frame``, e.g. a step's state and
        its content: one write, one system call); False as ``write_text``."""
        p = self.protocol
        if not self._between_messages():
            return False
        transport = p.transport
        if transport is None or not transport.connected or transport.disconnecting:
            return False
        if p.send_queue or transport.dataBuffer or transport._tempDataBuffer:
            transport.write(frame)  # behind what is already queued: keep the order
            self.buffered += 1
            return True
        try:
            sent = transport.socket.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # the peer is gone: Twisted notices on its next read and closes the
            # protocol; buffering keeps the usual path's behaviour meanwhile
            transport.write(frame)
            self.buffered += 1
            return True
        if sent < len(frame):
            transport.write(frame[sent:])
            self.buffered += 1
        else:
            self.direct += 1
        return True


def direct_writer(scope) -> DirectWriter | None:
    """A ``DirectWriter`` for the connection of ``scope`` when it is a plain daphne
    WebSocket (see the module); None otherwise."""
    protocol = _daphne_protocol(scope.get(RAW_SEND_KEY))
    if protocol is None:
        return None
    writer = DirectWriter(protocol)
    try:
        return writer if writer.usable() else None
    except AttributeError:  # another autobahn or Twisted layout: use the ASGI send
        logger.info("direct frame writes unavailable for this connection; using the ASGI send")
        return None
