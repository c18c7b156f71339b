"""project.core.jsonvalues: the one walk behind the context's and the socket messages' JSON checks."""

from __future__ import annotations

from project.core.jsonvalues import (
    BAD_KEY_TEXT,
    BAD_TEXT,
    KEY_NOT_TEXT,
    NOT_FINITE,
    NOT_JSON,
    TOO_DEEP,
    first_fault,
    text_fault,
)


def _nested(levels: int, inner=1):
    value = inner
    for _ in range(levels):
        value = [value]
    return value


def test_json_values_pass():
    assert first_fault({"a": [1, 2.5, "é", None, True, {"n": {}}], "b": ()}, max_depth=5) is None


def test_each_fault_is_found_with_its_path():
    assert (f := first_fault({"a": [0, float("nan")]}, max_depth=9)).path == ("a", 1) and f.kind == NOT_FINITE
    assert (f := first_fault(["ok", "a\x00b"], max_depth=9)).path == (1,) and (f.kind, f.text) == (BAD_TEXT, "nul")
    surrogate = first_fault({"k": {"\ud800": 1}}, max_depth=9)
    assert (surrogate.path, surrogate.kind, surrogate.value, surrogate.text) == (("k",), BAD_KEY_TEXT, "\ud800",
                                                                                 "surrogate")  # fmt: skip
    assert first_fault({1: "x"}, max_depth=9).kind == KEY_NOT_TEXT
    assert first_fault({"s": {1, 2}}, max_depth=9).kind == NOT_JSON
    assert text_fault("plain") == ""


def test_depth_counts_every_value_or_only_objects_and_arrays():
    assert first_fault(_nested(3), max_depth=2).kind == TOO_DEEP  # the 1 inside [[[1]]] is at depth 3
    assert first_fault(_nested(3), max_depth=3) is None
    assert first_fault(_nested(3), max_depth=2, containers_only=True) is None  # the deepest array is at 2
    assert first_fault(_nested(4), max_depth=2, containers_only=True).path == (0, 0, 0)


def test_a_value_holding_itself_ends_at_the_limit():
    loop: list = []
    loop.append(loop)
    assert first_fault(loop, max_depth=50).kind == TOO_DEEP
    assert first_fault(_nested(100_000), max_depth=10).kind == TOO_DEEP  # no RecursionError
