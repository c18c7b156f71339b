"""Callbacks of the solo demo (``solo.yaml``).

``trial_timeline(run, **params)`` is a stimulus_script (SPEC section 4): it gets
the run (``run.visit`` is the loop iteration, from 1) and the experiment's
``params``, and returns a jsPsych timeline (a list of trial dicts).
"""

from __future__ import annotations

from typing import Any

WORDS: tuple[tuple[str, bool], ...] = (
    ("crimson", True),
    ("table", False),
    ("turquoise", True),
    ("window", False),
    ("amber", True),
)


def word_for_visit(visit: int) -> tuple[str, bool]:
    """The word shown on a loop iteration (1-based), cycling through WORDS."""
    return WORDS[(max(visit, 1) - 1) % len(WORDS)]


def trial_timeline(run: Any, **params: Any) -> list[dict[str, Any]]:
    """One html-keyboard-response trial: is the word a colour? F = yes, J = no.

    The word depends on the loop iteration, so the three visits of the loop show
    three different words. ``params`` may set ``trial_duration`` (ms).
    """
    word, is_colour = word_for_visit(int(getattr(run, "visit", 1) or 1))
    trial: dict[str, Any] = {
        "type": "html-keyboard-response",
        "stimulus": f'<p style="font-size:48px">{word}</p>',
        "choices": ["f", "j"],
        "prompt": "<p>Is this word a colour? Press <b>F</b> for yes, <b>J</b> for no.</p>",
        "data": {"word": word, "correct_key": "f" if is_colour else "j"},
    }
    if params.get("trial_duration"):
        trial["trial_duration"] = int(params["trial_duration"])
    return [trial]
