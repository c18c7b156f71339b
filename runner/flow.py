"""Pure navigation through an experiment's forms: loops and their counters.

No database here: positions come in as :class:`Step` tuples, the counters as a
dict, and the functions return the next position (STYLE.md 2). Loop semantics follow
PyEnsemble: the *last* form of a loop carries ``repeat`` (how many times the loop
runs) and ``goto`` (the order of its first form). A loop ends when it has run
``repeat`` times, when the participant presses the break-loop button on its last
form, or when a stimulus script inside it returns an empty timeline. Nested loops
are refused by the loader, so at most one loop contains a form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One form's place: ``order`` from 1, and the loop it closes, if any."""

    order: int
    repeat: int | None = None
    goto: int | None = None

    @property
    def closes_loop(self) -> bool:
        return self.repeat is not None and self.goto is not None


def loop_containing(steps: list[Step], order: int) -> Step | None:
    """The loop-closing step whose loop range ``goto..order`` contains ``order``, or None."""
    for step in steps:
        if step.closes_loop and step.goto <= order <= step.order:
            return step
    return None


def step_at(steps: list[Step], order: int) -> Step | None:
    for step in steps:
        if step.order == order:
            return step
    return None


def next_order(steps: list[Step], order: int, loops: dict[str, int], *, leave_loop: bool = False) -> tuple[int, dict]:
    """The order after finishing (or skipping) form ``order``, and the updated loop counters.

    ``loops`` maps a loop-closing order (as a string, for JSON) to the number of passes
    completed. Returns an order past the last form when the experiment is over.
    ``leave_loop`` (break-loop button, experimenter's exit signal) ends the loop now.
    """
    loops = dict(loops)
    step = step_at(steps, order)
    if step is not None and step.closes_loop:
        key = str(step.order)
        loops[key] = loops.get(key, 0) + 1
        if not leave_loop and loops[key] < max(step.repeat, 1):
            return step.goto, loops
    return order + 1, loops


def order_after_loop(steps: list[Step], order: int) -> int:
    """Where to go when a form inside a loop ends it early (empty timeline); outside a loop, the next form."""
    loop = loop_containing(steps, order)
    return (loop.order if loop else order) + 1
