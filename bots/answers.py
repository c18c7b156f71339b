"""Valid answers from what a page shows: a value for every question widget within its
rendered limits, and a plausible jsPsych data record per trial of a timeline.

``default_answers(page, rng)`` answers every question of a run form (consent forms agree:
their first choice). ``jspsych_trials(timeline, rng)`` walks a timeline as jsPsych would
(nested ``timeline``s, ``timeline_variables`` x ``repetitions``) and returns one record per
trial with ``trial_type``, ``trial_index``, ``time_elapsed``, ``rt``, ``response`` (a key of
``choices``, a button index, a slider value, survey answers) and the trial's ``data``.
"""

from __future__ import annotations

import random
import re
from typing import Any

from bots.pages import Field, Page

WORDS = ("blue", "calm", "river", "maybe", "often", "music", "light", "quiet")
CONSENT_HANDLERS = {"form_consent"}
MAX_TRIALS = 1000


def _decimals(step: str) -> int:
    return len(step.split(".", 1)[1]) if "." in step else 0


def number_in(f: Field, rng: random.Random) -> str:
    """A number the field accepts: on its step grid between min and max."""
    low = f.min if f.min is not None else 0.0
    high = f.max if f.max is not None else low + 10
    step = float(f.step) if f.step not in ("", "any") else (1.0 if f.kind == "range" else 0.5)
    value = low + step * rng.randint(0, max(int((high - low) / step), 0))
    places = _decimals(f.step) if f.step not in ("", "any") else 1
    return str(int(round(value))) if places == 0 and float(value).is_integer() else f"{value:.{max(places, 1)}f}"


def value_for(f: Field, rng: random.Random, *, consent: bool = False) -> list[str]:
    """The posted value(s) of one field."""
    if f.kind in ("radio", "select"):
        choices = f.choices or [""]
        return [choices[0] if consent else rng.choice(choices)]
    if f.kind == "checkbox":
        if not f.multiple:
            return [f.choices[0]] if (f.required or consent or rng.random() < 0.5) else []
        picked = [c for c in f.choices if rng.random() < 0.4]
        return picked or ([rng.choice(f.choices)] if f.required or rng.random() < 0.5 else [])
    if f.kind in ("number", "range"):
        return [number_in(f, rng)]
    if f.kind == "email":
        return [f"bot{rng.randint(1, 10**6)}@example.org"]
    if f.kind == "date":
        return [f"{rng.randint(1950, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"]
    if f.kind == "tel":
        return [f"+1555{rng.randint(1000000, 9999999)}"]
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6 if f.kind == "textarea" else 3)))
    return [text[: f.maxlength] if f.maxlength else text]


def default_answers(page: Page, rng: random.Random) -> dict[str, list[str]]:
    """Every field of the run form, by field name."""
    consent = page.handler in CONSENT_HANDLERS
    return {name: value_for(f, rng, consent=consent) for name, f in page.fields.items()}


# ---- jsPsych -------------------------------------------------------------------------------


def _plugin(trial: dict) -> str:
    """``html-keyboard-response`` from any of the three ways of naming a plugin."""
    name = str(trial.get("type", "unknown"))
    if name.startswith("jsPsych"):
        name = re.sub(r"(?<!^)([A-Z])", r"-\1", name[len("jsPsych") :]).lower()
    return name.removeprefix("jspsych-")


def _response(plugin: str, trial: dict, rng: random.Random) -> Any:
    choices = trial.get("choices")
    if "keyboard" in plugin:
        return rng.choice(choices) if isinstance(choices, list) and choices else rng.choice("fj")
    if "button" in plugin:
        return rng.randrange(len(choices)) if isinstance(choices, list) and choices else 0
    if "slider" in plugin:
        low, high = trial.get("min", 0), trial.get("max", 100)
        numeric = isinstance(low, int | float) and isinstance(high, int | float)
        return rng.randint(int(low), int(high)) if numeric else 50
    if plugin.startswith("survey"):
        questions = trial.get("questions") if isinstance(trial.get("questions"), list) else [{}]
        return {str(q.get("name") or f"Q{i}") if isinstance(q, dict) else f"Q{i}": rng.choice(WORDS)
                for i, q in enumerate(questions)}  # fmt: skip
    return None


def _trial_nodes(node: Any, variables: dict) -> list[tuple[dict, dict]]:
    """The trials of a node in run order, each with the timeline variables in force."""
    if isinstance(node, list):
        return [t for child in node for t in _trial_nodes(child, variables)]
    if not isinstance(node, dict):
        return []
    if "timeline" not in node:
        return [(node, variables)]
    if not isinstance(node["timeline"], list):  # a builder ({"timeline": "name"}): its trials are the browser's
        return [({"type": "call-function"}, variables)]
    rows = node.get("timeline_variables") or [{}]
    repetitions = node.get("repetitions") if isinstance(node.get("repetitions"), int) else 1
    out = []
    for _ in range(max(repetitions, 1)):
        for row in rows:
            out += _trial_nodes(node["timeline"], {**variables, **(row if isinstance(row, dict) else {})})
    return out


def _resolve(value: Any, variables: dict) -> Any:
    if isinstance(value, dict) and set(value) == {"timelineVariable"}:
        return variables.get(value["timelineVariable"])
    if isinstance(value, dict) and set(value) == {"function"}:
        return None
    return value


def jspsych_trials(timeline: Any, rng: random.Random) -> list[dict]:
    """One plausible data record per trial of ``timeline``, as ``jsPsych.data.get().values()``."""
    if isinstance(timeline, dict) and "timeline" in timeline and not isinstance(timeline["timeline"], list):
        timeline = [timeline]
    records, elapsed = [], 0
    for index, (trial, variables) in enumerate(_trial_nodes(timeline, {})[:MAX_TRIALS]):
        plugin = _plugin(trial)
        rt = rng.randint(250, 1500)
        elapsed += rt + rng.randint(10, 60)
        data = trial.get("data") if isinstance(trial.get("data"), dict) else {}
        record = {k: _resolve(v, variables) for k, v in data.items()}
        stimulus = _resolve(trial.get("stimulus"), variables)
        if isinstance(stimulus, str | int | float):
            record["stimulus"] = stimulus
        record.update(trial_type=plugin, trial_index=index, time_elapsed=elapsed, rt=rt,
                      response=_response(plugin, trial, rng))  # fmt: skip
        records.append(record)
    return records
