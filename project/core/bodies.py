"""Request bodies under daphne: refused over ``MAX_REQUEST_BYTES`` before they are read,
and otherwise handed to the application from the spooled file as it reads them.

Twisted spools a request's body into a temporary file as it arrives (in memory under
100 kB). Then three things held whole bodies in memory: Twisted's own form parsing
(``request.args``, which daphne never uses) read a form post's whole body and parsed
it, and daphne put the whole body into the application's input queue at once, in
8 KiB messages, however slowly the application read it. Six anonymous 200 MB posts
to ``/`` grew a process from 342 to 1,831 MB, which it kept (issue 14). Here:

- ``LimitedRequest.gotLength`` refuses a declared ``Content-Length`` over the limit
  with 413 before a byte of the body is read; ``handleContentChunk`` counts a chunked
  body and refuses it once it passes the limit. After the 413 the server ends its side
  of the connection and reads and drops the rest of the body until the client closes,
  at most ``LINGER_SECONDS``, so that the client reads the 413 instead of a reset.
- Twisted's form parsing is off (``_parsePOSTFormSubmission``).
- ``LimitedRequest.process`` keeps the body file to itself (daphne's loop sees an empty
  body) and ``StreamedBody`` hands the application one chunk per ``receive()``: a
  process holds one chunk of a body at a time, whatever its size.

``LimitedHTTPFactory`` builds HTTP connections with ``LimitedRequest``;
``project.serve`` makes daphne's server use it.
"""

from __future__ import annotations

import asyncio
import io
from functools import partial

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings

LINGER_SECONDS = 30
CHUNK_BYTES = 64 * 1024


def too_large_page() -> bytes:
    limit = settings.MAX_REQUEST_BYTES
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Request too large</title></head>"
        f"<body><h1>Request too large</h1><p>This server accepts at most {limit / 1e6:,.0f} MB "
        "in one request. Nothing was stored.</p></body></html>"
    ).encode()


def _response_413() -> bytes:
    body = too_large_page()
    head = (
        "HTTP/1.1 413 Content Too Large\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedRequest(WebRequest):
    """daphne's request, with the body limited and streamed (see the module)."""

    _parsePOSTFormSubmission = False  # Twisted's request.args: the whole body in memory
    refused = False
    body_file = None
    _received = 0
    _linger = None

    def gotLength(self, length):
        super().gotLength(length)
        if length is not None and length > settings.MAX_REQUEST_BYTES:
            self.refuse_too_large()

    def handleContentChunk(self, data):
        if self.refused:
            return
        self._received += len(data)
        if self._received > settings.MAX_REQUEST_BYTES:
            self.refuse_too_large()
            return
        super().handleContentChunk(data)

    def refuse_too_large(self):
        """Answer 413 now, then read and drop what the client still sends until it
        closes, or for ``LINGER_SECONDS``."""
        from twisted.internet import reactor

        self.refused = True
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the answer
        channel = self.channel
        self.content.close()
        self.content = io.BytesIO()
        transport = channel.transport
        transport.write(_response_413())
        channel.dataReceived = lambda data: None  # the rest of the body, dropped unread
        # The answer is complete: end our side (the client reads it to the end), keep reading.
        getattr(transport, "loseWriteConnection", transport.loseConnection)()
        self._linger = reactor.callLater(LINGER_SECONDS, transport.abortConnection)
        path, method = getattr(channel, "_path", b"?"), getattr(channel, "_command", b"?")  # not parsed into self yet
        self.server.log_action("http", "complete", {
            "path": path.decode("ascii", "replace"), "status": 413, "method": method.decode("ascii", "replace"),
            "client": getattr(self.client, "host", None), "time_taken": 0, "size": 0,
        })  # fmt: skip

    def process(self):
        if self.refused:
            return None
        if not self.requestHeaders.hasHeader(b"Upgrade"):
            # daphne reads an empty body; the application gets the real one from StreamedBody
            self.body_file, self.content = self.content, io.BytesIO()
        return super().process()

    def connectionLost(self, reason):
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._close_body()
        super().connectionLost(reason)

    def finish(self):
        self._close_body()
        super().finish()

    def _close_body(self):
        if self.body_file is not None:
            self.body_file.close()


class StreamedBody:
    """The application's ``receive``: the request body read from its file one chunk per
    call, then daphne's own messages (disconnect) from ``queue``."""

    def __init__(self, request: LimitedRequest, queue: asyncio.Queue):
        self.request = request
        self.queue = queue
        self.done = False

    async def receive(self):
        if not self.done:
            body = self.request.body_file
            if body is None or body.closed:  # the client left (the file is closed with the request)
                self.done = True
                return await self._daphne_message()
            chunk = body.read(CHUNK_BYTES)
            self.done = len(chunk) < CHUNK_BYTES
            return {"type": "http.request", "body": chunk, "more_body": not self.done}
        return await self._daphne_message()

    async def _daphne_message(self):
        while True:
            message = await self.queue.get()
            if message["type"] != "http.request":  # the empty body daphne read
                return message


def create_streamed_application(server, protocol, scope):
    """daphne's ``Server.create_application`` for an HTTP request whose body stays in its
    file: the same bookkeeping, but the application's ``receive`` is a ``StreamedBody``."""
    assert "application_instance" not in server.connections[protocol]
    queue = asyncio.Queue()
    scope.setdefault("asgi", {"version": "3.0"})
    instance = server.application(
        scope=scope, receive=StreamedBody(protocol, queue).receive, send=partial(server.handle_reply, protocol)
    )
    if protocol not in server.connections:
        return None
    server.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
    return queue


class LimitedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = LimitedRequest
        return protocol
