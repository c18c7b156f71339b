"""What the server does by itself and the console's flow controls (issue 20): the
handlers of the flow-control timers (``groups.timers``), fired in the timer's claim
transaction through the same services as the console (an auto-advance is
``services.group_session_advance(..., by=AUTO)``: ``on_advance`` runs, the step log says
``by: auto``), and the console's timer and per-participant commands. ``register()`` is
called once per process from ``GroupsConfig.ready()``; the arming is
``groups.flowservices``'s, the decisions ``groups.flowcontrol``'s.
"""

from __future__ import annotations

from . import actions, services, store, timers
from . import flowcontrol as fc
from . import state as sm
from .flowservices import (
    ADVANCE,
    AUTO,
    DROPOUT,
    LOBBY_START,
    RELEASE,
    TIMEOUT,
    console_open,
    dropout_policy,
    lobby_policy,
)
from .models import GroupSession, Timer
from .state import GroupError


def _apply(timer: Timer, action, *, by=None) -> None:
    try:
        services.apply_action(group_session=timer.group_session_id, action=action, by=by)
    except GroupError as exc:  # the step moved on, the session ended: nothing to do
        Timer.objects.filter(pk=timer.pk).update(data={**timer.data, "refused": exc.code})


def _fire_timeout(timer: Timer, now: int) -> None:
    on_timeout = timer.data.get("on_timeout", "submit")
    _apply(timer, actions.TimeOut(int(timer.key), on_timeout, deadline_ms=timer.data.get("deadline_ms")))


def _fire_advance(timer: Timer, now: int) -> None:
    try:
        services.group_session_advance(group_session=timer.group_session_id, step=int(timer.key), by=AUTO)
    except GroupError as exc:
        Timer.objects.filter(pk=timer.pk).update(data={**timer.data, "refused": exc.code})


def _fire_dropout(timer: Timer, now: int) -> None:
    gs = GroupSession.objects.select_related("experiment").get(pk=timer.group_session_id)
    policy = dropout_policy(gs)
    if policy is not None:
        since = timer.data.get("offline_since_ms")
        _apply(timer, actions.DropOut(timer.data["participant"], policy.after_ms, policy.policy, since))


def _fire_release(timer: Timer, now: int) -> None:
    gs = GroupSession.objects.select_related("experiment").get(pk=timer.group_session_id)
    lobby = lobby_policy(gs)
    if lobby is not None:
        _apply(timer, actions.Release(timer.data["participant"], lobby.wait_ms, timer.data.get("joined_ms")))


def _fire_lobby_start(timer: Timer, now: int) -> None:
    """The lobby reached ``min_size``: start, unless an experimenter's console is open
    (then its *Start now* is the confirmation; closing the last console arms this again,
    ``flowservices.console_closed``)."""
    gs = GroupSession.objects.select_related("experiment").get(pk=timer.group_session_id)
    state, _ = store.load_state(gs)
    decision = fc.lobby_start(state, lobby_policy(gs), console_open=console_open(gs.pk))
    if decision != fc.START:
        Timer.objects.filter(pk=timer.pk).update(data={"waits_for": "experimenter" if decision else "nothing"})
        return
    try:
        services.group_session_start(group_session=gs.pk, by=AUTO)
    except GroupError as exc:
        Timer.objects.filter(pk=timer.pk).update(data={"refused": exc.code})


def register() -> None:
    """Fire the flow-control timers of this process through these handlers."""
    timers.register(TIMEOUT, _fire_timeout)
    timers.register(ADVANCE, _fire_advance)
    timers.register(DROPOUT, _fire_dropout)
    timers.register(RELEASE, _fire_release)
    timers.register(LOBBY_START, _fire_lobby_start)


# ---- the console's controls (SPEC 5 extension: docs/groups.md, "Flow control") --


def _control(group_session, action, by) -> sm.GroupState:
    return services.apply_action(group_session=group_session, action=action, by=by)


def extend_timer(*, group_session, step: int, seconds: float, by=None) -> sm.GroupState:
    """Give the current step's timer ``seconds`` more. Raises ``no_timer``, ``bad_seconds``, ``stale_step``."""
    return _control(group_session, actions.ExtendTimer(step, seconds), by)


def stop_timer(*, group_session, step: int, by=None) -> sm.GroupState:
    """Stop the current step's timer (it will not run out). Raises ``no_timer``, ``stale_step``."""
    return _control(group_session, actions.StopTimer(step), by)


def move_on(*, group_session, participant: str, step: int, by=None) -> sm.GroupState:
    """Close ``participant``'s current step as skipped (flagged). Raises ``already_responded``, ``stale_step``, ..."""
    return _control(group_session, actions.MoveOn(participant, step), by)


def send_back(*, group_session, participant: str, step: int, by=None) -> sm.GroupState:
    """Reopen the current step for ``participant``. Raises ``not_responded``, ``stale_step``, ..."""
    return _control(group_session, actions.SendBack(participant, step), by)


def resend(*, group_session, participant: str, by=None) -> sm.GroupState:
    """Send the state again (a new version every participant acknowledges)."""
    return _control(group_session, actions.Resend(participant), by)


#: The console's flow commands (socket message type -> service), beside ``services.EXPERIMENTER_COMMANDS``.
FLOW_COMMANDS = {
    "extend_timer": extend_timer,
    "stop_timer": stop_timer,
    "move_on": move_on,
    "send_back": send_back,
    "resend": resend,
}
