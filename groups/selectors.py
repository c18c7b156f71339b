"""Reads: group sessions, lockstep state, snapshots, who may connect.

``snapshot()`` builds the whole state once per change (what the experimenter sees);
``participant_view()`` derives, without the database, what one participant sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from django.conf import settings
from django.db import connection
from django.utils import timezone

from project.core.rows import Select, select_in

from . import context as group_context
from .flowcontrol import FLOW_MEMBER_FIELDS, LobbyPolicy, flow_fields, flow_row, lobby_view, timer_view
from .hooks import Group
from .models import GroupSession, Membership, StepLog
from .state import TERMINAL, GroupError, GroupState, Participant, is_behind


def get_group_session(group_session_id: int) -> GroupSession:
    try:
        return GroupSession.objects.select_related("experiment").get(pk=group_session_id)
    except (GroupSession.DoesNotExist, ValueError, TypeError):
        raise GroupError(f"No group session {group_session_id}.", code="not_found") from None


_statements: dict[tuple[str, str], str] = {}  # (name, database vendor) -> SQL


def _statement(name: str, write) -> str:
    """The SQL ``write(quote_name)`` returns, written once per database vendor from the
    models' metadata (the reads every change and every snapshot make: at N = 1000 the
    ORM's ``values_list`` of the memberships cost 3.3-4.3 ms of CPU against 1.7 ms for
    the same rows by hand, bench/analysis.md)."""
    key = (name, connection.vendor)
    if key not in _statements:
        _statements[key] = write(connection.ops.quote_name)
    return _statements[key]


def _members_sql(q) -> str:
    """The membership rows of one group session, in joining order, with whether each
    run has ended."""
    from runner.models import Session

    m, s = q(Membership._meta.db_table), q(Session._meta.db_table)
    col = {f.name: q(f.column) for f in Membership._meta.concrete_fields}
    ended = q(Session._meta.get_field("end").column)
    return (
        f"SELECT m.{col['pseudonym']}, m.{col['status']}, s.{ended} IS NOT NULL, "
        f"m.{col['connections']}, m.{col['form']}, m.{col['responded_step']}, m.{col['acked_version']}, "
        f"m.{col['session']}, {', '.join('m.' + col[name] for name in FLOW_MEMBER_FIELDS)}, m.{col['joined']}"
        f" FROM {m} m INNER JOIN {s} s ON s.{q(Session._meta.pk.column)} = m.{col['session']} "
        f"WHERE m.{col['group_session']} = %s ORDER BY m.{col['joined']}, m.{col['id']}"
    )


def load_state(group_session: GroupSession) -> tuple[GroupState, dict[str, int]]:
    """The pure state of ``group_session`` and each pseudonym's runner session id."""
    participants, session_ids = {}, {}
    with connection.cursor() as cursor:
        cursor.execute(_statement("members", _members_sql), [group_session.pk])
        rows = cursor.fetchall()
    kicked, finished = Membership.Status.KICKED, Membership.Status.FINISHED
    for pseudonym, status, ended, connections, form, responded_step, acked_version, session_id, *flow in rows:
        if ended and status != kicked:
            status = finished  # the run is over: no longer holds the group back
        participants[pseudonym] = Participant(
            connections=connections,
            status=status,
            form=form,
            responded_step=responded_step,
            acked_version=acked_version,
            **flow_fields(flow),
        )
        session_ids[pseudonym] = session_id
    state = GroupState(
        phase=group_session.phase,
        step=group_session.step,
        version=group_session.version,
        participant_version=group_session.participant_version,
        changed_ms=group_session.changed_ms,
        exit_loop_step=group_session.exit_loop_step,
        deadline_ms=group_session.deadline_ms,
        timer_remaining_ms=group_session.timer_remaining_ms,
        timed_out_step=group_session.timed_out_step,
        participants=MappingProxyType(participants),
    )
    return state, session_ids


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
        "participants": _participant_rows(state),
        "context": gs.context or {},
        # The console's notice: the store's copy could not be written from this row.
        "context_store_down": not group_context.sync(gs.pk, gs.context or {}, gs.version),
        "step_log": step_log(gs.pk),
    }


def step_log(group_session_id: int, *, limit: int | None = None) -> list[dict]:
    """The latest ``limit`` (``GROUP_CONSOLE_LOG_ENTRIES``) step-log entries, newest first,
    as the console shows them (experimenter view only)."""
    limit = settings.GROUP_CONSOLE_LOG_ENTRIES if limit is None else limit
    with connection.cursor() as cursor:  # with every snapshot: written once, like load_state's
        cursor.execute(_statement("step_log", _step_log_sql), [int(group_session_id), int(limit)])
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


_SHARED_KEYS = (
    "type", "version", "group_session", "phase", "step", "server_ms", "shared_params", "exit_loop", "run_url",
    "size", "ready", "active", "all_responded", "timer", "lobby",
)  # fmt: skip


def participant_view(full: dict, pseudonym: str) -> dict:
    """What participant ``pseudonym`` may see of snapshot ``full``: no context, no
    other participants, only counts and their own row (pure function)."""
    view = {key: full[key] for key in _SHARED_KEYS}
    me = next((p for p in full["participants"] if p["id"] == pseudonym), None)
    view["me"] = (
        {"id": me["id"], "status": me["status"], "responded_step": me["responded_step"]}
        if me
        else {"id": pseudonym, "status": "kicked", "responded_step": None}
    )
    return view


# ---- codes ----------------------------------------------------------------------


def find_by_participant_code(code: str, *, experiment_id: int | None = None) -> GroupSession | None:
    """The live (unexpired, not over) group session with this participant code."""
    qs = GroupSession.objects.filter(participant_code=code, expires__gt=timezone.now()).exclude(phase__in=TERMINAL)
    if experiment_id is not None:
        qs = qs.filter(experiment_id=experiment_id)
    return qs.select_related("experiment", "ticket").first()


def find_by_experimenter_code(code: str) -> GroupSession | None:
    qs = GroupSession.objects.filter(experimenter_code=code, expires__gt=timezone.now())
    return qs.select_related("experiment").first()


def can_control(user, group_session: GroupSession) -> bool:
    """A staff user attached to this group session with the experimenter code."""
    if not (user and user.is_authenticated and user.is_staff):
        return False
    return group_session.experimenters.filter(pk=user.pk).exists()


# ---- sockets --------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantIdentity:
    group_session_id: int
    pseudonym: str
    session_id: int


def authenticate_participant(*, group_session_id: int, cookies: dict) -> ParticipantIdentity:
    """Who a participant socket is, from the run cookie of the group's experiment.

    Raises ``GroupError``: ``not_found`` (no such group session), ``unauthenticated``
    (no or unknown run cookie), ``forbidden`` (that run is not in this group session),
    ``kicked``.
    """
    result = authenticate_participants([(group_session_id, cookies)])[0]
    if isinstance(result, GroupError):
        raise result
    return result


def authenticate_participants(requests: list[tuple[int, dict]]) -> list[ParticipantIdentity | GroupError]:
    """``authenticate_participant`` for many sockets at once (a room connecting, a
    reconnect wave), in two queries whatever their number: the group sessions, then
    every run cookie's run and membership. One result per request, in order: the
    identity, or the ``GroupError`` that socket is refused with."""
    from runner.models import Session

    wanted = {gs_id for gs_id, _ in requests if isinstance(gs_id, int)}
    experiments = dict(GroupSession.objects.filter(pk__in=wanted).values_list("pk", "experiment_id"))
    tokens: list[str | None] = []
    for gs_id, cookies in requests:
        token = (cookies or {}).get(f"{settings.RUN_COOKIE_NAME}{experiments.get(gs_id)}")
        tokens.append(token if isinstance(token, str) and token and gs_id in experiments else None)
    runs: dict[str, tuple] = {}  # run token -> (session id, membership's group session, pseudonym, status)
    known = sorted({t for t in tokens if t})
    for start in range(0, len(known), 500):
        rows = (
            Session.objects.filter(run_token__in=known[start : start + 500])
            .values_list("run_token", "pk", "group_membership__group_session_id", "group_membership__pseudonym",
                         "group_membership__status")
        )  # fmt: skip
        for token, *row in rows:
            runs.setdefault(token, tuple(row))
    results: list[ParticipantIdentity | GroupError] = []
    for (gs_id, _), token in zip(requests, tokens, strict=True):
        if gs_id not in experiments:
            results.append(GroupError(f"No group session {gs_id}.", code="not_found"))
        elif token is None:
            results.append(GroupError("No run cookie for this experiment.", code="unauthenticated"))
        elif token not in runs:
            results.append(GroupError("Unknown run.", code="unauthenticated"))
        else:
            session_id, member_of, pseudonym, status = runs[token]
            if member_of != gs_id:
                results.append(GroupError("This run is not part of this group session.", code="forbidden"))
            elif status == Membership.Status.KICKED:
                results.append(GroupError("You were removed from this group session.", code="kicked"))
            else:
                results.append(ParticipantIdentity(gs_id, pseudonym, session_id))
    return results


def authenticate_experimenter(*, group_session_id: int, user) -> int:
    """Check an experimenter socket. Raises ``GroupError``: ``not_found``,
    ``unauthenticated`` (not logged in), ``forbidden`` (not staff or not attached)."""
    gs = get_group_session(group_session_id)
    if not (user and user.is_authenticated):
        raise GroupError("Log in as an experimenter.", code="unauthenticated")
    if not can_control(user, gs):
        raise GroupError("Attach to this group session with its experimenter code.", code="forbidden")
    return gs.pk


# ---- for the runner -------------------------------------------------------------


@dataclass(frozen=True)
class TrialView:
    """What the runner needs to serve a ``group_trial`` form to one participant."""

    group_session_id: int
    pseudonym: str
    phase: str
    step: int
    shared_params: dict
    responded: bool  # this participant already answered the current step
    exit_loop: bool  # the experimenter ended the loop at this step
    kicked: bool
    membership_id: int = 0
    last_step: int | None = None  # the last step this participant answered
    lobby: str = ""  # "standby" (waits to replace a dropout) or "released" (lobby, issue 20)

    @property
    def missed_steps(self) -> bool:
        """The group moved on past steps this participant never answered (e.g. after
        "Advance anyway" while their tab was closed): its round may be ahead of theirs."""
        if self.phase != "running" or self.responded or self.kicked:
            return False
        return self.step > 0 and (self.last_step is None or self.last_step < self.step - 1)

    @property
    def must_wait(self) -> bool:
        """Show the waiting screen instead of the form."""
        return self.phase in ("waiting", "paused") or (self.phase == "running" and self.responded) or bool(self.lobby)


# Read on every request of a group run (project/core/rows.py says why by hand); a run
# is in one group session at most (Membership.session is one-to-one).
_MEMBERSHIP = Select(Membership, related=("group_session",), where='t0."session_id" = %s')


def trial_for(session) -> TrialView | None:
    """The lockstep position of a runner ``Session`` (None if it is in no group session)."""
    membership = _MEMBERSHIP.first(session.pk)
    return None if membership is None else _trial_view(membership)


def _trial_view(membership) -> TrialView:
    gs = membership.group_session
    return TrialView(
        group_session_id=gs.pk,
        pseudonym=membership.pseudonym,
        phase=gs.phase,
        step=gs.step,
        shared_params=gs.shared_params or {},
        responded=membership.responded_step == gs.step,
        exit_loop=gs.exit_loop_step is not None and gs.exit_loop_step == gs.step,
        kicked=membership.status == Membership.Status.KICKED,
        membership_id=membership.pk,
        last_step=membership.responded_step,
        lobby=membership.status if membership.status in (Membership.Status.STANDBY, Membership.Status.RELEASED) else "",
    )


def group_round(group_session_id: int, form_order: int, step: int) -> int:
    """The group's visit number of form ``form_order`` at ``step``: one past the latest
    visit anyone of the group answered that form with at an earlier step (a form is in
    one loop at most, passed once), or 1. A step nobody answered cannot be seen here."""
    from runner.models import Response

    latest = (
        Response.objects.filter(group_session_id=group_session_id, form_order=form_order, step__lt=step)
        .order_by("-visit")
        .values_list("visit", flat=True)
        .first()
    )
    return (latest or 0) + 1


def trial_views(sessions) -> list[TrialView | None]:
    """``trial_for`` of many runs (answering together) in one statement, in their order."""
    if not sessions:
        return []
    select = select_in(Membership, "session_id", len(sessions), related=("group_session",))
    found = {m.session_id: m for m in select.all(*(s.pk for s in sessions))}
    return [_trial_view(found[s.pk]) if s.pk in found else None for s in sessions]


def run_group(*, session) -> Group | None:
    """``run.group`` for callbacks of a runner session in a group session (None otherwise):
    the same object the group hooks receive. Its ``participants`` are read when first
    used: a run entering the next visit inside an answer's transaction (which holds the
    group session) reads no memberships unless a callback asks for them."""
    membership = Membership.objects.filter(session=session).select_related("group_session__experiment").first()
    if membership is None:
        return None
    return Group(membership.group_session, None)


def step_answers(gs: GroupSession, pseudonym: str) -> list[dict] | None:
    """What the participant ``pseudonym`` answered at the group session's current step
    (items and values, jsPsych trials as their response), for the console's "answers"
    on demand; None for a pseudonym not in this group session. Reads only."""
    from runner.models import Response

    membership = Membership.objects.filter(group_session=gs, pseudonym=pseudonym).only("session_id").first()
    if membership is None:
        return None
    rows = Response.objects.filter(session_id=membership.session_id, group_session=gs, step=gs.step)
    return [{"item": item, "value": value} for item, value in rows.order_by("id").values_list("item", "value")]
