"""The one exception shape that crosses app boundaries: a refusal with a machine code.

Domain errors (``groups.state.GroupError``) subclass it, so that an adapter such as
``realtime`` can turn any refusal into its wire error (``code`` sent as is) without
importing the domain app that raised it."""

from __future__ import annotations


class CodedError(Exception):
    """A refused request. ``code`` is machine-readable (sent to clients as is)."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self):
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"
