"""Run daphne with an access log that records no credentials.

daphne's access log writes the full request URI, so ticket codes (``?tc=``),
Prolific ids (``?PROLIFIC_PID=``) and email-verification tokens would land in
the server log. This launcher is daphne's own command line with two changes: the
access log drops every query string and masks secret path segments, and request
bodies are limited to ``MAX_REQUEST_BYTES`` and streamed to the application instead
of held in memory (``project.core.bodies``).

    python -m project.serve -b 127.0.0.1 -p 8000 asgi:application
"""

from __future__ import annotations

import re
import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server

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


class RedactingCLI(CommandLineInterface):
    server_class = RedactingServer


def main(argv: list[str] | None = None) -> None:
    RedactingCLI().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
