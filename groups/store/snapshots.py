"""Snapshots of a group session and their publishing.

``snapshot()`` is the whole visible state (SPEC 5 ``group.state``) as the experimenter
sees it; ``participant_view()`` what one participant may see of it (``SHARED_KEYS``
and their own row); ``wire_body()`` both, pre-serialised for ``realtime`` (one text
per receiver class). Publishing: ``publish_on_commit`` (from the state in hand: the
participants' part first, the experimenter's view of the same version right after it) and
``publish_console`` (a coalesced re-read, for changes only the console sees).
"""

from __future__ import annotations

import copy
import logging
from functools import partial

from django.conf import settings
from django.db import connection, transaction

from realtime import frames, publish

from .. import context as group_context
from .. import live
from ..flowcontrol import LobbyPolicy, flow_row, lobby_view, timer_view
from ..models import GroupSession, StepLog
from ..sql import statement
from ..state import GroupError, GroupState, is_behind
from .load import load_state

logger = logging.getLogger(__name__)

#: What every participant sees of a snapshot (besides their own row, ``me``).
SHARED_KEYS = (
    "type", "version", "group_session", "phase", "step", "server_ms", "shared_params", "exit_loop", "run_url",
    "size", "ready", "active", "all_responded", "starts_at", "timer", "lobby",
)  # fmt: skip


def get_group_session(group_session_id: int) -> GroupSession:
    try:
        return GroupSession.objects.select_related("experiment").get(pk=group_session_id)
    except (GroupSession.DoesNotExist, ValueError, TypeError):
        raise GroupError(f"No group session {group_session_id}.", code="not_found") from None


def snapshot(group_session_id: int) -> dict:
    """The whole visible state (SPEC 5 ``group.state``), as the experimenter sees it."""
    gs = get_group_session(group_session_id)
    state, _ = load_state(gs)
    return snapshot_of(gs, state)


def _participant_rows(state: GroupState) -> list[dict]:
    return [
        {"id": pid, "connected": p.connected, "status": p.status, "form": p.form, "responded_step": p.responded_step,
         "acked_version": p.acked_version, "behind": is_behind(state, pid), **flow_row(p)}
        for pid, p in state.participants.items()
    ]  # fmt: skip


def snapshot_of(gs: GroupSession, state: GroupState) -> dict:
    """``snapshot()`` of a state already in hand: a change that has just committed
    ``state`` publishes it without reading all N membership rows back (the step log is
    read: it is not part of ``state``). The context is the row's (the database is its
    record); building the snapshot syncs the context store's copy from it
    (``groups.context.sync``), which replays it after a Redis restart or outage."""
    return {**_visible(gs, state), **_console_part(gs, state)}


def _visible(gs: GroupSession, state: GroupState, content_reads=None) -> dict:
    """The snapshot's keys every participant sees (``SHARED_KEYS``), with
    ``participant_version``, in the snapshot's order (``content_reads``: ``publish_state``)."""
    return {
        "type": "group.state",
        "version": state.version,
        "participant_version": state.participant_version,
        "group_session": gs.pk,
        "phase": state.phase,
        "step": state.step,
        "server_ms": state.changed_ms,
        "shared_params": gs.shared_params or {},
        "exit_loop": state.exit_loop_step is not None and state.exit_loop_step == state.step,
        "run_url": f"/run/{gs.experiment_id}/",
        "size": gs.expected_size,
        "ready": state.ready_count,
        "active": len(state.active),
        "all_responded": state.all_responded,
        "timer": timer_view(state),  # pages count down from deadline_ms on their corrected clock
        "lobby": lobby_view(LobbyPolicy.from_definition(gs.experiment.lobby), state),  # None without a lobby
        "starts_at": live.starts_at(gs, state, content_reads),  # the live page's onset of this step (groups.live)
    }


def _console_part(gs: GroupSession, state: GroupState) -> dict:
    """The rest of the snapshot: what only the experimenter sees."""
    return {
        "participants": _participant_rows(state),
        "context": gs.context or {},
        # The console's notice: the store's copy could not be written from this row.
        "context_store_down": not group_context.sync(gs.pk, gs.context or {}, gs.version),
        "step_log": step_log(gs.pk),
        "onsets": live.console_onsets(gs.pk, state.step),
    }


def step_log(group_session_id: int, *, limit: int | None = None) -> list[dict]:
    """The latest ``limit`` (``GROUP_CONSOLE_LOG_ENTRIES``) step-log entries, newest first,
    as the console shows them (experimenter view only)."""
    limit = settings.GROUP_CONSOLE_LOG_ENTRIES if limit is None else limit
    with connection.cursor() as cursor:  # with every snapshot: written once, like load_state's
        cursor.execute(statement("step_log", _step_log_sql), [int(group_session_id), int(limit)])
        rows = cursor.fetchall()
    return [{"at_ms": at_ms, "action": action, "step": step, "by": by or None} for at_ms, action, step, by in rows]


def _step_log_sql(q) -> str:
    """The latest step-log rows of one group session with their experimenter's name."""
    from django.contrib.auth import get_user_model

    user = get_user_model()
    col = {f.name: q(f.column) for f in StepLog._meta.concrete_fields}
    return (
        f"SELECT l.{col['at_ms']}, l.{col['action']}, l.{col['step']}, u.{q(user._meta.get_field('username').column)}"
        f" FROM {q(StepLog._meta.db_table)} l LEFT OUTER JOIN {q(user._meta.db_table)} u"
        f" ON u.{q(user._meta.pk.column)} = l.{col['by']}"
        f" WHERE l.{col['group_session']} = %s ORDER BY l.{col['at_ms']} DESC, l.{col['id']} DESC LIMIT %s"
    )


def shared_view(full: dict) -> dict:
    """What every participant sees of snapshot ``full`` (``SHARED_KEYS``)."""
    return {key: full[key] for key in SHARED_KEYS}


def participant_view(full: dict, pseudonym: str) -> dict:
    """What participant ``pseudonym`` may see of snapshot ``full``: no context, no
    other participants, only counts and their own row (pure function). ``wire_body``
    sends exactly this, pre-serialised."""
    view = shared_view(full)
    me = next((p for p in full["participants"] if p["id"] == pseudonym), None)
    view["me"] = (
        {"id": me["id"], "status": me["status"], "responded_step": me["responded_step"]}
        if me
        else {"id": pseudonym, "status": frames.ABSENT_STATUS, "responded_step": None}
    )
    return view


def wire_body(full: dict) -> str:
    """Snapshot ``full`` as ``realtime`` publishes it: the experimenter's view, the
    participants' shared part and each participant's row (``participant_view``), each
    serialised once (``realtime.frames.encode``)."""
    shared = shared_view(full)
    rows = [(p["id"], p["status"], p["responded_step"]) for p in full["participants"]]
    return frames.encode(full["version"], full["participant_version"], shared, rows, full)


def read_wire_body(group_session_id: int) -> str:
    """The current snapshot's wire form, read from the database (``realtime``'s reader)."""
    return wire_body(snapshot(group_session_id))


def publish_state(gs: GroupSession, state: GroupState, content_reads=None) -> None:
    """Publish a change that has just committed, from the state it committed (what a
    fresh read would return): no read of all N rows back, so an advance reaches the
    sockets sooner. The participants' part goes first, the experimenter's view of the same
    version right after it (``frames.console_body``): at N=500 the console's part (every
    row, the step log, the onsets, the context store's sync, 137 KB of JSON) took 5-10 ms
    that every page waited for. In a group whose pages reload, the step's page is rendered
    first (``live.warm``): a page that reloads on the state finds it. ``content_reads``: the
    rows a step's content is built from, read by the change (``live.send_content_reads``).
    Never raises."""
    try:
        live.warm(gs, state)
        visible = _visible(gs, state, content_reads)
        rows = [(pid, p.status, p.responded_step) for pid, p in state.participants.items()]
        shared = shared_view(visible)
        publish.publish_text(gs.pk, frames.encode(state.version, state.participant_version, shared, rows, None))
        publish.publish_text(gs.pk, frames.console_body(state.version, {**visible, **_console_part(gs, state)}))
    except Exception:
        logger.exception("broadcast of group session %s failed", gs.pk)


def publish_on_commit(gs: GroupSession, new: GroupState, content_reads=None) -> None:
    """Publish ``new`` once the transaction commits, from the state in hand (no read of
    every membership back). ``gs`` is copied now: a later change in the same
    transaction must not show in this version's snapshot."""
    transaction.on_commit(partial(publish_state, copy.copy(gs), new, content_reads))


def publish_console(group_session_id: int, *, within: float = 0.0) -> None:
    """After the commit, a re-read of the snapshot for a change only the console sees
    (coalesced with the others of a burst, within ``within`` seconds:
    ``realtime.publish.broadcast_state``)."""
    transaction.on_commit(partial(publish.broadcast_state, group_session_id, within=within))
