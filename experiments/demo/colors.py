"""Group hooks and stimulus callback of the colour demo (``colors.yaml``).

Hooks (SPEC section 5, every hook optional), as this module assumes them:

- ``group`` has ``context`` (a mutable mapping shared by the group; assign a
  key to change it), ``step`` (the lockstep index, from 0) and
  ``shared_params`` (the current step's parameters). The runtime calls the
  hooks of one group session one at a time.
- ``participant`` has a ``pseudonym`` (or an ``id``); ``answers`` maps question
  keys to the submitted values.

The context holds ``warmth``: a list of ``[step, participant, rating]``,
``shown``: the colour names shown so far, ``step_means`` and ``summary``.

``next_colour`` is the whole policy, pure and deterministic: no ratings yet ->
a neutral start colour; mean warmth so far above 4 -> the next unseen cool
colour, otherwise the next unseen warm colour.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from statistics import fmean
from typing import Any

START = ("lavender", "#b497d6")
WARM = (("red", "#d7263d"), ("orange", "#f46036"), ("amber", "#f5a623"), ("coral", "#ff7f50"))
COOL = (("blue", "#2e86ab"), ("teal", "#1b998b"), ("violet", "#5f4bb6"), ("sky", "#48cae4"))
THRESHOLD = 4.0
RATING_KEY = "warmth"


def next_colour(ratings: list[float], shown: list[str]) -> dict[str, Any]:
    """The colour for the next step, from all warmth ratings so far and the names already shown."""
    if not ratings:
        name, hex_ = START
        return {"colour": name, "hex": hex_, "mean_warmth_so_far": None, "palette": "start"}
    mean = fmean(ratings)
    palette_name, palette = ("cool", COOL) if mean > THRESHOLD else ("warm", WARM)
    unseen = [c for c in palette if c[0] not in shown]
    name, hex_ = unseen[0] if unseen else palette[len(shown) % len(palette)]
    return {"colour": name, "hex": hex_, "mean_warmth_so_far": round(mean, 3), "palette": palette_name}


def _context(group: Any) -> MutableMapping:
    return group.context


def _who(participant: Any) -> str:
    for attr in ("pseudonym", "id", "pk"):
        value = getattr(participant, attr, None)
        if value is not None:
            return str(value)
    return str(participant)


def _rating(answers: Mapping[str, Any]) -> float | None:
    try:
        return float(answers.get(RATING_KEY))
    except (TypeError, ValueError):
        return None


def on_join(group: Any, participant: Any) -> None:
    """Make sure the context has its keys (joining twice changes nothing)."""
    ctx = _context(group)
    for key, empty in (("warmth", []), ("shown", []), ("step_means", {})):
        if key not in ctx:
            ctx[key] = empty


def on_advance(group: Any) -> dict[str, Any]:
    """Shared trial parameters of the new step: the colour every participant sees."""
    ctx = _context(group)
    ratings = [float(r[2]) for r in ctx.get("warmth", [])]
    shown = list(ctx.get("shown", []))
    params = next_colour(ratings, shown)
    ctx["shown"] = [*shown, params["colour"]]
    return params


def on_response(group: Any, participant: Any, answers: Mapping[str, Any]) -> None:
    """Record a participant's warmth rating for the current step (a resubmission replaces it)."""
    rating = _rating(answers)
    if rating is None:
        return
    ctx = _context(group)
    step, who = int(getattr(group, "step", 0)), _who(participant)
    kept = [r for r in ctx.get("warmth", []) if (r[0], r[1]) != (step, who)]
    ctx["warmth"] = [*kept, [step, who, rating]]


def on_all_responded(group: Any) -> None:
    """Store the mean rating of the step everybody has answered."""
    ctx = _context(group)
    step = int(getattr(group, "step", 0))
    ratings = [float(r[2]) for r in ctx.get("warmth", []) if r[0] == step]
    if ratings:
        ctx["step_means"] = {**ctx.get("step_means", {}), str(step): round(fmean(ratings), 3)}


def on_end(group: Any) -> None:
    """Leave a summary in the context (written to the database with the final checkpoint)."""
    ctx = _context(group)
    ratings = [float(r[2]) for r in ctx.get("warmth", [])]
    ctx["summary"] = {
        "colours_shown": list(ctx.get("shown", [])),
        "ratings": len(ratings),
        "mean_warmth": round(fmean(ratings), 3) if ratings else None,
    }


def _shared_params(run: Any) -> Mapping[str, Any]:
    group = getattr(run, "group", None)
    if group is None:
        return {}
    shared = getattr(group, "shared_params", None)
    if shared is None and isinstance(group, Mapping):
        shared = group.get("shared_params")
    return shared if isinstance(shared, Mapping) else {}


def trial_timeline(run: Any, **params: Any) -> list[dict[str, Any]]:
    """One html-button-response trial showing the step's colour swatch.

    The colour comes from the group's shared parameters (set by ``on_advance``);
    outside a group session (e.g. an experimenter preview) the start colour is shown.
    """
    shared = _shared_params(run)
    name = str(shared.get("colour") or START[0])
    hex_ = str(shared.get("hex") or START[1])
    swatch = (
        f'<div style="width:240px;height:240px;margin:24px auto;border-radius:12px;background:{hex_}" '
        f'role="img" aria-label="a colour swatch"></div>'
    )
    return [
        {
            "type": "html-button-response",
            "stimulus": swatch,
            "choices": ["I have seen the colour"],
            "prompt": "<p>Look at the colour, then rate how warm it feels.</p>",
            "data": {"colour": name, "hex": hex_},
        }
    ]
