"""Run daphne with an access log that records no credentials.

daphne's access log writes the full request URI, so ticket codes (``?tc=``),
Prolific ids (``?PROLIFIC_PID=``) and email-verification tokens would land in
the server log. This launcher is daphne's own command line with two changes: the
access log drops every query string and masks secret path segments; request
bodies are limited to ``MAX_REQUEST_BYTES`` and streamed to the application instead
of held in memory (``project.core.bodies``); and a WebSocket frame or message over
daphne's limits (``--websocket-max-frame-size``, ``--websocket-max-message-size``,
1 MiB each) closes the socket with code 4009, as a frame over ``WS_MAX_MESSAGE_BYTES``
does (``realtime.consumers``), instead of autobahn's default of dropping the TCP
connection without a close frame.

    python -m project.serve -b 127.0.0.1 -p 8000 asgi:application
"""

from __future__ import annotations

import re
import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

CLOSE_TOO_LARGE = 4009  # realtime.consumers.CLOSE_TOO_LARGE (not imported: Django is not set up here)

# Path segments that are secrets themselves: /run/<id>/verify/<token>/
SECRET_SEGMENTS = [re.compile(r"(/verify/)[^/?]+")]


def redact_path(path: str) -> str:
    """The request path with its query string and secret segments masked."""
    if not isinstance(path, str):
        return "[unreadable path]"
    path, sep, _query = path.partition("?")
    for pattern in SECRET_SEGMENTS:
        path = pattern.sub(r"\1[redacted]", path)
    return path + ("?[redacted]" if sep else "")


class RedactingActionLogger:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, protocol, action, details):
        if "path" in details:
            details = {**details, "path": redact_path(details["path"])}
        self.inner(protocol, action, details)


class RedactingServer(Server):
    """daphne's server with the redacting access log and limited, streamed bodies."""

    def __init__(self, *args, action_logger=None, **kwargs):
        if action_logger is not None:
            action_logger = RedactingActionLogger(action_logger)
        super().__init__(*args, action_logger=action_logger, **kwargs)

    # daphne's run() builds its HTTP factory itself (``self.http_factory = HTTPFactory(self)``);
    # this property makes that factory the one whose requests limit and stream bodies.
    @property
    def http_factory(self):
        return self.__dict__.get("_http_factory")

    @http_factory.setter
    def http_factory(self, factory):
        from project.core.bodies import LimitedHTTPFactory

        limited = factory if isinstance(factory, LimitedHTTPFactory) else LimitedHTTPFactory(self)
        self.__dict__["_http_factory"] = limited

    def create_application(self, protocol, scope):
        if scope.get("type") == "http" and getattr(protocol, "body_file", None) is not None:
            from project.core.bodies import create_streamed_application

            return create_streamed_application(self, protocol, scope)
        return super().create_application(protocol, scope)


class LimitedWebSocketProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol, closing with 4009 when a frame or message is
    larger than allowed: autobahn fails such a connection by dropping TCP (its
    ``failByDrop``), so the browser only sees 1006 and reconnects to send it again."""

    def _max_message_size_exceeded(self, msg_size, max_msg_size, reason):
        if self.state != self.STATE_OPEN:
            return super()._max_message_size_exceeded(msg_size, max_msg_size, reason)
        self.failedByMe = True  # autobahn discards the rest of the frame
        self.sendCloseFrame(code=CLOSE_TOO_LARGE, reasonUtf8=b"message too large", isReply=False)


class EnsembleServer(RedactingServer):
    """``RedactingServer`` whose WebSocket connections are ``LimitedWebSocketProtocol``
    (daphne builds its factory in ``run()``; it is adjusted as it is set)."""

    @property
    def ws_factory(self):
        return self.__dict__.get("_ws_factory")

    @ws_factory.setter
    def ws_factory(self, factory):
        factory.protocol = LimitedWebSocketProtocol
        self._ws_factory = factory


class RedactingCLI(CommandLineInterface):
    server_class = EnsembleServer


def main(argv: list[str] | None = None) -> None:
    RedactingCLI().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
