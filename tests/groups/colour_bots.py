"""bots.py for the colour demo in the group tests (``bots_module="tests.groups.colour_bots"``):
bot N (from 1) rates the colour of step S with ``1 + N + S``, i.e. participant i (from 0)
gives ``2 + i + S`` as the hand-written loops did; it expects the step's colour in the
shared parameters and on its swatch. ``SLOW[(bot, step)] = seconds`` makes that bot take
its time over that step's answer (a test puts a restart or an outage in between)."""

from __future__ import annotations

from bots import expect

SLOW: dict[tuple[int, int], float] = {}


def rating(bot: int, step: int) -> int:
    return 1 + bot + step


def colour_trial(screen):
    colour = screen.shared_params.get("colour")
    expect(colour, "the step's colour is in the shared parameters")
    expect(screen.shared_params["hex"] in str(screen.timeline), "the swatch shows the step's colour")
    answers = {"warmth": rating(screen.bot, screen.step)}
    if (screen.bot, screen.step) in SLOW:
        answers["_think"] = SLOW[(screen.bot, screen.step)]
    return answers
