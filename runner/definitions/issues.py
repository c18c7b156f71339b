"""Problems found in a definition file, each with the line it is on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Issue:
    """One problem. ``line`` is 1-based; warnings do not stop a load."""

    line: int
    message: str
    warning: bool = False

    def format(self, source: str) -> str:
        """``FILE:LINE: message`` (``FILE:LINE: warning: message`` for a warning)."""
        kind = "warning: " if self.warning else ""
        return f"{source}:{self.line}: {kind}{self.message}"


class DefinitionError(Exception):
    """A definition that cannot be loaded. ``issues`` lists every error (sorted by line)."""

    def __init__(self, issues: list[Issue], source: str = "<definition>"):
        self.issues = sorted(i for i in issues if not i.warning)
        self.warnings = sorted(i for i in issues if i.warning)
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [issue.format(self.source) for issue in self.issues]
