"""Moving a session through its forms: entering a visit (condition and stimulus
scripts, loops, the stimulus cache) and finishing.

Called only from ``runner.services`` inside its transaction, with the Session row
locked; nothing here commits. ``session.state`` holds::

    visits       {order: visits entered so far}
    loops        {loop-closing order: passes completed}
    current      the visit on screen: order, visit, nonce, served_at, timeline,
                 stimulus_id, html (None once the run is over)
    last_done    {order, visit, nonce} of the last submitted visit (double submits)
    stimulus     the stimulus id cached by ``_s`` forms
    finished     True once the run is over; ``declined`` when consent was refused
    exit_loop    set by the experimenter's exit-loop signal; consumed at the next loop decision
"""

from __future__ import annotations

import secrets

from django.utils import timezone

from runner import selectors
from runner.flow import loop_containing, next_order, order_after_loop
from runner.handlers import get_handler
from runner.run_context import call_callback, make_run

#: Forms entered (or skipped) in one go before we assume a runaway loop.
MAX_STEPS_PER_ADVANCE = 10_000


class RunawayLoop(RuntimeError):
    """Every form of a loop is skipped and the loop never ends (misconfiguration)."""


def finish(session, *, declined: bool = False) -> None:
    """Mark the run over (no form on screen); sets ``Session.end`` once."""
    state = session.state
    state["current"] = None
    state["finished"] = True
    if declined:
        state["declined"] = True
    if session.end is None:
        session.end = timezone.now()


def enter(session, order: int, positions=None) -> None:
    """Put the first showable form at or after ``order`` on screen.

    Skips forms whose condition script returns False (counting loop passes), leaves a
    loop whose stimulus script returns an empty timeline, and finishes the run past
    the last form. Raises ``CallbackFailed`` (caller's transaction rolls back).
    """
    positions = positions if positions is not None else selectors.positions(session.experiment)
    steps = selectors.steps_of(positions)
    state = session.state
    state.setdefault("visits", {})
    state.setdefault("loops", {})
    for _ in range(MAX_STEPS_PER_ADVANCE):
        position = selectors.position_at(positions, order)
        if position is None:
            finish(session)
            return
        order = position.order
        visit = state["visits"].get(str(order), 0) + 1
        run = make_run(session=session, position=position, visit=visit)
        if position.condition_script and not call_callback(position.condition_script, run):
            order, state["loops"] = next_order(steps, order, state["loops"])
            continue
        handler = get_handler(position.handler)
        prepared = handler.prepare(run)
        if prepared.empty:
            order = order_after_loop(steps, order)
            continue
        _show(session, position, handler, prepared, visit)
        return
    raise RunawayLoop(f"more than {MAX_STEPS_PER_ADVANCE} forms skipped in {session.experiment.slug}")


def _show(session, position, handler, prepared, visit: int) -> None:
    state = session.state
    state["visits"][str(position.order)] = visit
    stimulus_id = prepared.stimulus_id
    if handler.stimulus_cache == "set":
        state["stimulus"] = stimulus_id
    elif handler.stimulus_cache == "use":
        stimulus_id = stimulus_id if stimulus_id is not None else state.get("stimulus")
    else:
        state["stimulus"] = None
    state["current"] = {
        "order": position.order,
        "visit": visit,
        "nonce": secrets.token_urlsafe(16),
        "served_at": None,
        "timeline": prepared.timeline,
        "stimulus_id": stimulus_id,
        "html": prepared.html,
    }
    session.current_order = position.order
    if handler.ends_session:
        state["finished"] = True
        if session.end is None:
            session.end = timezone.now()


def advance(session, order: int, *, leave_loop: bool = False, positions=None) -> None:
    """After visit of ``order`` is done: apply the loop rule, then enter the next form."""
    positions = positions if positions is not None else selectors.positions(session.experiment)
    steps = selectors.steps_of(positions)
    state = session.state
    if loop_containing(steps, order) is not None and state.pop("exit_loop", False):
        leave_loop = True
    loops = state.setdefault("loops", {})
    if leave_loop:
        _, state["loops"] = next_order(steps, order, loops, leave_loop=True)
        target = order_after_loop(steps, order)
    else:
        target, state["loops"] = next_order(steps, order, loops)
    enter(session, target, positions)
