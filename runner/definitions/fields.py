"""Typed reading of located YAML values, collecting an Issue for each problem."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug

from runner.models.design import JSPSYCH_WIDTH_RANGE, jspsych_width_px

from .issues import Issue
from .nodes import YMap, YNode, YScalar, YSeq, to_plain


class Reader:
    """Reads values out of the located tree; every problem becomes an Issue."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, line: int, message: str) -> None:
        self.issues.append(Issue(line, message))

    def warn(self, line: int, message: str) -> None:
        self.issues.append(Issue(line, message, warning=True))

    @property
    def failed(self) -> bool:
        return any(not i.warning for i in self.issues)

    def unknown_keys(self, node: YMap, allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key, entry in node.entries.items():
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (allowed: {', '.join(allowed)})"
            self.error(entry.key_line, f"unknown key '{key}' in {where}{hint}")

    def present(self, node: YNode | None) -> bool:
        return node is not None and not (isinstance(node, YScalar) and node.is_null)

    def string(
        self, node: YNode | None, where: str, line: int, *, required: bool = False, max_length: int | None = None
    ) -> str:
        """A text value, taken as written (``Yes`` stays "Yes"); '' when absent."""
        if not self.present(node):
            if required:
                self.error(line, f"{where} is required")
            return ""
        if not isinstance(node, YScalar):
            self.error(node.line, f"{where} must be text, not a {'list' if isinstance(node, YSeq) else 'mapping'}")
            return ""
        text = node.value if node.is_str else node.raw
        if required and not text.strip():
            self.error(node.line, f"{where} must not be empty")
        if max_length is not None and len(text) > max_length:
            self.error(node.line, f"{where} is longer than {max_length} characters")
        return text

    def slug(self, node: YNode | None, where: str, line: int, *, max_length: int = 100) -> str:
        text = self.string(node, where, line, required=True, max_length=max_length)
        if text:
            try:
                validate_slug(text)
            except ValidationError:
                self.error(
                    node.line,
                    f"{where} '{text}' is not URL-safe: use letters, digits, hyphens and underscores only",
                )
        return text

    def url(self, node: YNode | None, where: str, line: int) -> str:
        text = self.string(node, where, line, max_length=500)
        if text:
            try:
                URLValidator(schemes=["http", "https"])(text)
            except ValidationError:
                self.error(node.line, f"{where} '{text}' is not an http(s) URL")
        return text

    def boolean(self, node: YNode | None, where: str, default: bool = False) -> bool:
        if not self.present(node):
            return default
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        self.error(node.line, f"{where} must be true or false")
        return default

    def integer(self, node: YNode | None, where: str, *, minimum: int = 1) -> int | None:
        if not self.present(node):
            return None
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(node.line, f"{where} must be a whole number")
            return None
        if value < minimum:
            self.error(node.line, f"{where} must be at least {minimum}")
            return None
        return value

    def jspsych_width(self, node: YNode | None, where: str) -> str:
        """``normal``, ``wide`` or a number of pixels, as text ("normal" when absent or wrong)."""
        if not self.present(node):
            return "normal"
        value = node.value if isinstance(node, YScalar) else None
        try:
            jspsych_width_px(value)
        except ValueError:
            low, high = JSPSYCH_WIDTH_RANGE
            self.error(node.line, f"{where} must be normal, wide or a number of pixels from {low} to {high}")
            return "normal"
        return str(value).strip().lower()

    def mapping(self, node: YNode | None, where: str) -> YMap | None:
        if not self.present(node):
            return None
        if not isinstance(node, YMap):
            self.error(node.line, f"{where} must be a mapping (key: value lines)")
            return None
        return node

    def sequence(self, node: YNode | None, where: str) -> YSeq | None:
        if not self.present(node):
            return None
        if not isinstance(node, YSeq):
            self.error(node.line, f"{where} must be a list")
            return None
        return node

    def json_mapping(self, node: YNode | None, where: str) -> dict[str, Any]:
        """A mapping of plain JSON values (stored in a JSONField)."""
        ymap = self.mapping(node, where)
        if ymap is None:
            return {}
        value = to_plain(ymap)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.error(ymap.line, f"{where} must hold plain JSON values (text, numbers, lists, mappings): {exc}")
            return {}
        return value
