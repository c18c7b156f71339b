"""What a JSON value may not hold, found by one walk (the context's values and the
socket messages both use it: ``groups.context.value_problem``,
``realtime.schemas.unfit_value``; each words the fault its own way).

Pure and iterative: a nesting of any depth is refused, never a RecursionError, and a
value that contains itself ends at the depth limit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: ``Fault.kind``: nested too deep; a float that is not finite; a string (or a key) with
#: a NUL or a lone surrogate (``Fault.text`` says which: ``"nul"`` / ``"surrogate"``); a
#: key that is not a string; a value that is no JSON type.
TOO_DEEP, NOT_FINITE, BAD_TEXT, BAD_KEY_TEXT, KEY_NOT_TEXT, NOT_JSON = (
    "too_deep", "not_finite", "bad_text", "bad_key_text", "key_not_text", "not_json",
)  # fmt: skip


@dataclass(frozen=True)
class Fault:
    path: tuple  # keys and indices from the top down to the value (for a key fault: to its object)
    kind: str
    value: Any = None  # the value, or the key, at fault
    text: str = ""  # for a text fault: "nul" or "surrogate"


def text_fault(text: str) -> str:
    """``"nul"`` (PostgreSQL's ``jsonb`` stores no NUL; browsers cannot parse it),
    ``"surrogate"`` (a lone surrogate: not Unicode text) or ``""``."""
    if "\x00" in text:
        return "nul"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate"
    return ""


def first_fault(value: Any, *, max_depth: int, containers_only: bool = False) -> Fault | None:
    """The first part of ``value`` that JSON (as we store and send it) cannot hold, or
    None. Depth: the top value is at 0, what an object or array holds one deeper; a
    value deeper than ``max_depth`` is a fault (with ``containers_only``: an object or
    array deeper than it). Objects, arrays (and tuples), strings, finite numbers,
    booleans and None are JSON."""
    stack = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        container = isinstance(item, (dict, list, tuple))
        if depth > max_depth and (container or not containers_only):
            return Fault(path, TOO_DEEP, item)
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return Fault(path, NOT_FINITE, item)
        elif isinstance(item, str):
            if problem := text_fault(item):
                return Fault(path, BAD_TEXT, item, problem)
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, (*path, i), depth + 1) for i, inner in enumerate(item))
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    return Fault(path, KEY_NOT_TEXT, key)
                if problem := text_fault(key):
                    return Fault(path, BAD_KEY_TEXT, key, problem)
                stack.append((inner, (*path, key), depth + 1))
        else:
            return Fault(path, NOT_JSON, item)
    return None
