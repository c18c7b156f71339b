"""Reads: group sessions by code, who may connect, what the runner needs of a group run.

The state of a group session and its snapshots belong to ``groups.store``;
``snapshot`` and ``get_group_session`` are re-exported here for the views.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from project.core.rows import Select, select_in

from .hooks import Group
from .models import GroupSession, Membership
from .state import TERMINAL, GroupError
from .store import get_group_session, snapshot  # noqa: F401  (the views' reads, owned by groups.store)
from .timers import now_ms

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
    participant_code: str = ""  # (tells group sessions apart in groups.live's keys)
    timed_out: bool = False  # the step's timer closed this participant's answer (on_timeout: submit)

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


#: Where a run's ``TrialView``, read with it, waits for ``groups.lockstep`` (in the run's
#: ``__dict__``: ``LockstepGroupTrial.preload``, ``groups.live_content``).
PRELOADED_VIEW = "_lockstep_view"


def trial_for(session) -> TrialView | None:
    """The lockstep position of a runner ``Session`` (None if it is in no group session)."""
    membership = _MEMBERSHIP.first(session.pk)
    return None if membership is None else trial_view(membership)


DEADLINE_TOLERANCE_MS = 300  # a page's corrected clock may run a little ahead of the server's


def _timed_out(gs, membership) -> bool:
    """The step's timer closed this participant's answer, or its deadline has passed (the
    page sends what is filled at the deadline: the server's timer may fire a moment later)."""
    if gs.timed_out_step == gs.step and membership.flag == "timed_out":
        return True
    if membership.responded_step == gs.step or gs.deadline_ms is None:
        return False
    return now_ms() >= gs.deadline_ms - DEADLINE_TOLERANCE_MS


def trial_view(membership) -> TrialView:
    """The lockstep position of a membership read with its group session."""
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
        participant_code=gs.participant_code,
        timed_out=_timed_out(gs, membership),
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
    return [trial_view(found[s.pk]) if s.pk in found else None for s in sessions]


def answered_step(session_id: int) -> int | None:
    """The group step the run's participant last answered (``Membership.responded_step``;
    None outside a group or before any answer). Reads only."""
    return Membership.objects.filter(session_id=session_id).values_list("responded_step", flat=True).first()


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
