"""The demo experiments' callbacks and group hooks (experiments/demo)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runner.callbacks import resolve_callable, resolve_module

# The demo package lives in experiments/, which the resolver puts on the path.
solo = resolve_module("demo.solo")
colors = resolve_module("demo.colors")


def test_solo_timeline_is_one_keyboard_trial_per_visit():
    words = []
    for visit in (1, 2, 3):
        timeline = solo.trial_timeline(SimpleNamespace(visit=visit), trial_duration=5000)
        assert len(timeline) == 1
        trial = timeline[0]
        assert trial["type"] == "html-keyboard-response" and trial["choices"] == ["f", "j"]
        assert trial["trial_duration"] == 5000
        words.append(trial["data"]["word"])
    assert len(set(words)) == 3, "each loop visit shows another word"
    assert solo.trial_timeline(SimpleNamespace(visit=1)) == solo.trial_timeline(SimpleNamespace(visit=1))


def test_callbacks_named_by_the_demo_files_resolve():
    assert resolve_callable("demo.solo.trial_timeline") is solo.trial_timeline
    assert resolve_callable("demo.colors.trial_timeline") is colors.trial_timeline
    assert resolve_module("demo.colors") is colors


def test_next_colour_starts_neutral_then_follows_the_ratings():
    assert colors.next_colour([], [])["colour"] == colors.START[0]
    warm_rated = colors.next_colour([6, 7, 5], ["lavender"])
    assert warm_rated["palette"] == "cool" and warm_rated["colour"] == colors.COOL[0][0]
    cool_rated = colors.next_colour([1, 2, 4], ["lavender"])
    assert cool_rated["palette"] == "warm" and cool_rated["colour"] == colors.WARM[0][0]
    assert colors.next_colour([4], [])["palette"] == "warm", "exactly 4 is not above the threshold"
    seen = colors.next_colour([7], ["blue", "teal"])
    assert seen["colour"] == "violet", "an unseen colour comes first"
    every = [name for name, _ in colors.COOL]
    assert colors.next_colour([7], every)["colour"] in every, "a used-up palette cycles"


def _group(step=0):
    return SimpleNamespace(context={}, step=step, shared_params={})


def test_hooks_run_a_whole_group_session():
    group = _group()
    people = [SimpleNamespace(pseudonym=f"p{i}") for i in range(3)]
    for person in people:
        colors.on_join(group, person)
    colors.on_join(group, people[0])  # a reconnect changes nothing
    assert group.context == {"warmth": [], "shown": [], "step_means": {}}
    group.shared_params = colors.on_advance(group)
    assert group.shared_params["colour"] == "lavender"
    for person, rating in zip(people, ("6", 7, 5), strict=True):
        colors.on_response(group, person, {"warmth": rating})
    colors.on_response(group, people[2], {"warmth": 6})  # a resubmission replaces
    colors.on_response(group, people[1], {"other": 1})  # no rating: ignored
    colors.on_all_responded(group)
    assert group.context["step_means"] == {"0": pytest.approx(6.333, abs=1e-3)}
    group.step = 1
    group.shared_params = colors.on_advance(group)
    assert group.shared_params["palette"] == "cool" and group.shared_params["colour"] == "blue"
    colors.on_end(group)
    assert group.context["summary"] == {"colours_shown": ["lavender", "blue"], "ratings": 3, "mean_warmth": 6.333}


def test_colour_timeline_shows_the_shared_colour_or_the_start_colour():
    group = _group()
    group.shared_params = {"colour": "teal", "hex": "#1b998b"}
    trial = colors.trial_timeline(SimpleNamespace(group=group))[0]
    assert trial["type"] == "html-button-response"
    assert "#1b998b" in trial["stimulus"] and trial["data"] == {"colour": "teal", "hex": "#1b998b"}
    preview = colors.trial_timeline(SimpleNamespace(group=None))[0]
    assert colors.START[1] in preview["stimulus"]
    as_mapping = colors.trial_timeline(SimpleNamespace(group={"shared_params": {"colour": "red", "hex": "#d7263d"}}))
    assert as_mapping[0]["data"]["colour"] == "red"
