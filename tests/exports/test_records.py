"""Cell text, flattening and wide column names (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from exports.records import canonical, cell, flatten, utc_iso, wide_base, wide_cells


def test_cells():
    assert cell(None) == "" and cell(True) == "true" and cell(False) == "false"
    assert cell(3) == "3" and cell(2.5) == "2.5" and cell("a,b") == "a,b"
    assert cell(["b", "a"]) == '["b","a"]' and cell({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert cell(date(2020, 1, 2)) == "2020-01-02"


def test_timestamps_are_utc():
    oslo = timezone(timedelta(hours=1))
    assert utc_iso(datetime(2025, 3, 14, 10, 0, tzinfo=oslo)) == "2025-03-14T09:00:00.000Z"
    assert utc_iso(datetime(2025, 3, 14, 9, 0, 0, 123456, tzinfo=UTC)) == "2025-03-14T09:00:00.123Z"
    assert utc_iso(None) is None


def test_flatten_and_canonical():
    assert flatten("jspsych", {"rt": 5, "response": {"Q0": "a", "Q1": {"x": [1, 2]}}}) == {
        "jspsych.rt": 5,
        "jspsych.response.Q0": "a",
        "jspsych.response.Q1.x": [1, 2],
    }
    assert list(canonical({"b": {"d": 1, "c": 2}, "a": [{"z": 1, "y": 2}]})) == ["a", "b"]
    assert list(canonical({"b": {"d": 1, "c": 2}})["b"]) == ["c", "d"]


def test_wide_names():
    assert wide_base("jspsych:3", 3) == wide_base("jspsych:3", None) == "jspsych.t3"
    assert wide_base("rating", None) == "jspsych.rating"
    cells = wide_cells(
        {"a": 1},
        {"rt": 2},
        item="q",
        form_order=2,
        visit=3,
        trial_index=None,
        want_value=True,
        want_parts=True,
        want_jspsych=True,
    )
    assert cells == {"q.a__f2_v3": 1, "jspsych.q.rt__f2_v3": 2}
    assert (
        wide_cells(
            4,
            None,
            item="q",
            form_order=1,
            visit=1,
            trial_index=None,
            want_value=False,
            want_parts=True,
            want_jspsych=True,
        )
        == {}
    )
