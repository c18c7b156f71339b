"""A package's ``bots.py``: what a bot answers on each form and what it expects to see.

``bots.py`` sits next to the experiment's callbacks (the package its ``stimulus_script``,
``condition_script`` or ``group_flow`` names) or is named with ``run_bots --bots MODULE``.
It defines a function per form, named after the form (``colour-trial`` ->
``colour_trial``), or a ``FORMS`` mapping of form name to function, and optionally
``answer(screen)`` for every other form. Each gets a :class:`Screen` (what the page showed)
and returns the answers by question key (others keep the default bot's), or ``None`` for
the default bot's answers. ``expect(condition, message)`` fails the bot with the message,
naming bot, form and step. See docs/bots.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bots.answers import default_answers, jspsych_trials
from bots.pages import Field, Page


class ExpectationFailed(AssertionError):
    """Raised by :func:`expect`; the bot stops and the run exits non-zero."""


def expect(condition: Any, message: str = "expectation failed") -> None:
    """Fail this bot's run with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExpectationFailed(message)


@dataclass
class Screen:
    """What a bot's page showed when it answered a form."""

    bot: int  # the bot's number, from 1
    form: str  # the form's name
    handler: str
    visit: int  # the loop iteration of this form, from 1
    step: int | None  # the group step (lockstep pages), else None
    shared_params: dict  # the group step's shared parameters ({} outside a group)
    timeline: Any  # the jsPsych timeline shown, or None
    questions: dict[str, Field]  # question key -> field (widget kind, choices, limits)
    earlier: list[dict]  # this bot's earlier answers: {"form", "visit", "step", "answers"}
    rng: random.Random
    default: dict[str, Any] = field(default_factory=dict)  # the default bot's answers by key

    @property
    def label(self) -> str:
        where = f"step {self.step}" if self.step is not None else f"visit {self.visit}"
        return f"bot {self.bot}, form {self.form!r}, {where}"

    def trials(self) -> list[dict]:
        """Plausible jsPsych data for the timeline shown (a list to change and return as ``_jspsych``)."""
        return jspsych_trials(self.timeline, self.rng) if self.timeline is not None else []

    def answers_to(self, form: str) -> list[dict]:
        """Earlier answers of this bot on ``form``, oldest first."""
        return [e["answers"] for e in self.earlier if e["form"] == form]


def screen_for(bot: int, page: Page, *, shared_params: dict, earlier: list[dict], rng: random.Random) -> Screen:
    defaults = default_answers(page, rng)
    questions = {f.key: f for f in page.fields.values()}
    default = {page.fields[n].key: v if len(v) != 1 else v[0] for n, v in defaults.items()}
    _order, visit = page.order_visit
    return Screen(bot, page.form_name, page.handler, visit, page.step if page.lockstep else None,
                  dict(shared_params or {}), page.timeline, questions, earlier, rng, default)  # fmt: skip


def posted_fields(page: Page, chosen: dict) -> list[tuple[str, str]]:
    """The posted fields of the answers ``chosen`` (question keys or field names; ``_jspsych``)."""
    names = {f.key: name for name, f in page.fields.items()}
    out = []
    for key, value in chosen.items():
        if key == "_jspsych":
            out.append(("_jspsych", json.dumps(value)))
            continue
        values = value if isinstance(value, list | tuple) else [value]
        out += [(names.get(key, key), str(v)) for v in values if v is not None]
    return out


class Script:
    """The loaded ``bots.py`` (or none: the default bot)."""

    def __init__(self, module=None):
        self.module = module
        self.name = module.__name__ if module is not None else "default bot"

    def handler_for(self, form: str) -> Callable | None:
        if self.module is None:
            return None
        forms = getattr(self.module, "FORMS", None) or {}
        return (
            forms.get(form)
            or getattr(self.module, form.replace("-", "_"), None)
            or getattr(self.module, "answer", None)
        )

    def answers(self, screen: Screen) -> dict[str, list[str]]:
        """Field name -> posted values, and ``_jspsych`` trials, for the screen (raises ExpectationFailed)."""
        chosen = dict(screen.default)
        handler = self.handler_for(screen.form)
        result = handler(screen) if handler is not None else None
        if result is not None:
            if not isinstance(result, dict):
                raise TypeError(f"{self.name}: {screen.form} returned {type(result).__name__}, not a dict")
            chosen.update(result)
        if screen.timeline is not None and "_jspsych" not in chosen:
            chosen["_jspsych"] = screen.trials()
        return chosen


def load(dotted: str | None) -> Script:
    """``bots.py`` as a module (``demo.bots``), or the default bot for ``None``."""
    if not dotted:
        return Script()
    from runner.callbacks import ensure_experiments_on_path

    ensure_experiments_on_path()
    return Script(importlib.import_module(dotted))


def module_for(experiment) -> str | None:
    """The ``<package>.bots`` module of an experiment's callbacks' package, if it exists."""
    from runner.callbacks import ensure_experiments_on_path

    ensure_experiments_on_path()
    paths = [experiment.group_flow or ""]
    for position in experiment.experiment_forms.all():
        paths += [position.stimulus_script or "", position.condition_script or ""]
    for package in dict.fromkeys(p.split(".", 1)[0] for p in paths if p):
        if importlib.util.find_spec(package) is not None and importlib.util.find_spec(f"{package}.bots"):
            return f"{package}.bots"
    return None
