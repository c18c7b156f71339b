"""The lockstep ``group_trial`` handler, registered over the runner's plain one
from ``GroupsConfig.ready()``.

Serving (GET): the live page (``groups/live.html``, docs/groups.md "The live page") for
the whole group part: the waiting screen or the *current* step, whose content
(``groups.live_content``: the stimulus script run with ``run.group`` at that step) is
embedded; later steps reach the page over its socket. Showing a step takes no
group-session lock and writes nothing. After the end: ``groups/waiting.html``; kicked:
``groups/removed.html``.

Answering (POST, inside the runner's transaction that stores the answer): the step is
checked against an unlocked read first (a stale answer is refused at once); the rows
get the group session, step and shared parameters (``Outcome.row_fields``); the
answer is recorded with its group session by ``groups.answers`` as the outcome's
``BatchStep``: the runner calls ``check_responses`` for this answer and the others to
the same group session that arrived with it (``runner.batching``), which locks the
group session, checks the step again and refuses a step that is no longer current
(``StepRefused``, a RunError: nothing of that answer is stored), then ``write`` and
``announce`` after the rows are written. Holding the lock only from there to the
commit lets the answers of a whole group be stored side by side;
an answer to the step at which the experimenter exited the loop leaves the loop;
the clock offset the page estimated over the participant socket is kept with the
session (``keep_clock_estimate``) and the onset it achieved goes on the rows
(``onset_fields``).
"""

from __future__ import annotations

import math

from django import forms
from django.conf import settings

from runner.errors import RunError
from runner.handlers import BatchStep, Outcome, Prepared
from runner.handlers.base import JSPSYCH_FIELD, JsPsychDataField
from runner.handlers.builtin import GroupTrialHandler

from . import answers, selectors
from .state import GroupError

STEP_FIELD = "_group_step"
TIMED_OUT_FIELD = "_timed_out"  # the live page sends what is filled when the timer ran out (issue 20)
CLOCK_OFFSET_FIELD, CLOCK_RTT_FIELD = "_clock_offset_ms", "_clock_rtt_ms"
ONSET_FIELD, ONSET_LATE_FIELD = "_onset_ms", "_onset_late_ms"
MAX_CLOCK_OFFSET_MS = 7 * 24 * 3600 * 1000  # a browser clock a week off is not worth keeping
MAX_CLOCK_RTT_MS = 60_000
WAITING_TEMPLATE = "groups/waiting.html"
REMOVED_TEMPLATE = "groups/removed.html"
TRIAL_TEMPLATE = "groups/trial.html"
LIVE_TEMPLATE = "groups/live.html"
_UNSET = object()


class StepRefused(RunError):
    """A group_trial answer for a step that is not (or no longer) current."""

    status = 409
    title = "This trial is over"


def lockstep_context(view: selectors.TrialView, session) -> dict:
    """What the waiting screen and trial page need to follow the group."""
    return {
        "ws_path": f"/ws/group/{view.group_session_id}/participant/",
        "run_url": f"/run/{session.experiment_id}/",
        "step": view.step,
        "phase": view.phase,
        "exit_loop": view.exit_loop,
        "pseudonym": view.pseudonym,
    }


def should_leave_loop(session) -> bool:
    """The visit on screen should be skipped, leaving the loop: the experimenter
    exited the loop at the current step and this participant already answered it,
    or the group session is over (nothing more can be answered in lockstep)."""
    return _leaves_loop(selectors.trial_for(session))


def _view(page) -> selectors.TrialView | None:
    """The participant's lockstep position, read once per request (the runner's ``page``
    lives for one request; the answer's own check under the lock reads it again)."""
    if not hasattr(page, "_lockstep_view"):
        preloaded = page.session.__dict__.pop(selectors.PRELOADED_VIEW, _UNSET)
        page._lockstep_view = selectors.trial_for(page.session) if preloaded is _UNSET else preloaded
    return page._lockstep_view


def _leaves_loop(view: selectors.TrialView | None) -> bool:
    if view is None or view.kicked:
        return False
    return (view.exit_loop and view.responded) or view.phase in ("ended", "aborted")


def _number(raw, *, low: float, high: float) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and low <= value <= high else None


def keep_clock_estimate(session, post) -> None:
    """Keep the socket's clock offset estimate posted with an answer (``_clock_offset_ms``:
    browser clock minus server clock, from the ping with the shortest round trip
    ``_clock_rtt_ms``) on ``session.clock_offset_ms`` when its round trip beats the one
    kept (``session.state["clock"]``). It replaces the one-off estimate from the first
    POST's ``_client_ms``. Sets fields of the session instance that ``submit_form``
    holds locked and saves; it does not save by itself."""
    offset = _number(post.get(CLOCK_OFFSET_FIELD), low=-MAX_CLOCK_OFFSET_MS, high=MAX_CLOCK_OFFSET_MS)
    rtt = _number(post.get(CLOCK_RTT_FIELD), low=0, high=MAX_CLOCK_RTT_MS)
    if offset is None or rtt is None:
        return
    kept = session.state.get("clock") or {}
    if kept.get("via") == "socket" and kept.get("rtt_ms", float("inf")) <= rtt:
        return
    session.clock_offset_ms = offset
    session.state["clock"] = {"via": "socket", "offset_ms": offset, "rtt_ms": rtt}


def onset_fields(post) -> dict:
    """The onset the live page achieved for this step, posted with the answer
    (``_onset_ms``: server clock, ms since the epoch; ``_onset_late_ms``): Response columns."""
    onset = _number(post.get(ONSET_FIELD), low=0, high=2**53 - 1)
    late = _number(post.get(ONSET_LATE_FIELD), low=0, high=MAX_CLOCK_RTT_MS * 1000)
    return {"onset_ms": round(onset) if onset is not None else None,
            "onset_late_ms": round(late) if late is not None and onset is not None else None}  # fmt: skip


class LockstepGroupTrial(GroupTrialHandler):
    name = "group_trial"
    template_name = TRIAL_TEMPLATE
    live_page = True  # shown on the live page (groups.live_content)

    def interpret(self, result) -> Prepared:
        """Also ``{"timeline": [...], "preload": [urls]}`` (the live page preloads those
        media before the step's onset: ``groups.live_content``)."""
        if isinstance(result, dict) and isinstance(result.get("timeline"), list):
            result = result["timeline"]
        return super().interpret(result)

    # ------------------------------------------------------------ entering
    def prepare(self, run) -> Prepared:
        """Only decides whether the loop ends (an empty timeline); the trial itself is
        built at render time, for the step current then."""
        prepared = super().prepare(run)
        return Prepared(empty=True) if prepared.empty else Prepared()

    def skip_visit(self, page) -> str | None:
        """Asked by the runner before showing the visit (GET): ``"leave_loop"`` once the
        experimenter exited the loop at a step this participant answered, or the group
        session is over; ``"skip"`` for a visit whose round the group has passed (the
        participant missed steps: they rejoin on the group's round, and the loop ends
        with the group's)."""
        view = _view(page)
        if _leaves_loop(view):
            return "leave_loop"
        if view is not None and view.missed_steps:
            if page.visit < selectors.group_round(view.group_session_id, page.position.order, view.step):
                return "skip"
        return None

    # ------------------------------------------------------------ serving
    def build_form(self, page, data=None):
        form = super().build_form(page, data)
        view = _view(page)
        if view is not None:
            form.fields[STEP_FIELD] = forms.IntegerField(widget=forms.HiddenInput, initial=view.step)
            if page.position.stimulus_script and JSPSYCH_FIELD not in form.fields:
                # The timeline is built at render time; the page's script fills this field
                # when it shows one (and keeps the questions hidden until it has).
                form.fields[JSPSYCH_FIELD] = JsPsychDataField(required=False)
            if data is not None and data.get(TIMED_OUT_FIELD) and view.timed_out:
                for field in form.fields.values():  # what was filled when time ran out; the rest missing
                    field.required = False
        return form

    def get_context(self, page, form) -> dict:
        """The live page (``groups/live.html``) for the whole group part: it shows the
        waiting screen or the current step and follows the group without navigating
        (``groups.live_content``). Reads only: no group-session lock, no write; where the
        participant is reaches the console from the page's socket (``groups.live``)."""
        view = _view(page)
        if view is None:  # a group experiment run outside any group session
            return {}
        context = {"lockstep": lockstep_context(view, page.session), "shared_params": view.shared_params,
                   "group_step": view.step}  # fmt: skip
        # get_handler() gives a fresh instance per request, so choosing the template here is safe.
        if view.kicked or view.lobby == "released":
            self.template_name = REMOVED_TEMPLATE
            context["released_code"] = page.session.experiment.lobby.get("release_completion_code", "")
            context["released"] = view.lobby == "released"
            return context
        if view.phase in ("ended", "aborted"):
            self.template_name = WAITING_TEMPLATE
            return context
        from . import live_content

        # The visit and form the runner has already resolved (no second read of them).
        found = live_content.found_for(page, self)
        live = live_content.participant_content(page.session, view=view, found=found, form=form)
        content = live["content"] or {}
        if content.get("problem_code"):  # a failing stimulus script: the runner's friendly error page
            self.template_name = "runner/error.html"
            context.update(title=content["problem_title"], message=content["problem"], code=content["problem_code"])
            return context
        self.template_name = LIVE_TEMPLATE
        # The first step's questions are in the page itself (the JSON names them by null).
        live_html, content["html"] = content.get("html", ""), None
        context.update(live=live, live_html=live_html, timeline=None,
                       live_push=getattr(settings, "GROUP_LIVE_PUSH_CONTENT", True))  # fmt: skip
        return context

    # ------------------------------------------------------------ answering
    def process(self, page, form, post) -> Outcome:
        outcome = super().process(page, form, post)
        step = form.cleaned_data.get(STEP_FIELD)
        if step is None:
            return outcome  # not in a group session: a plain trial
        view = _view(page)  # read without a lock; checked again under it
        refused = _refusal(view, step)
        if refused:
            _refuse(GroupError("", code=refused))
        keep_clock_estimate(page.session, post)
        # The rows carry this step's parameters (they change only with the step, which is
        # checked again under the lock). An exit-loop pressed after this read is caught at
        # the next visit's skip_visit, which leaves the loop once this answer is stored.
        if view.exit_loop:
            outcome.leave_loop = True
        outcome.row_fields = {"group_session_id": view.group_session_id, "step": step,
                              "shared_params": view.shared_params, **onset_fields(post)}  # fmt: skip
        # Recorded with the group session last in the transaction that stores the rows (the
        # group session is locked only from there to the commit), together with the other
        # answers to this group session that arrived with it (runner.batching).
        outcome.batch_step = BatchStep(
            key=("group_session", view.group_session_id),
            check=answers.check_responses,
            item=answers.Answer.of(session=page.session, step=step, answers=outcome.answers, view=view),
            refuse=_refusal_error,
        )
        return outcome

    @classmethod
    def preload(cls, sessions) -> None:
        """Read the lockstep position of many runs answering together in one statement."""
        for session, view in zip(sessions, selectors.trial_views(sessions), strict=True):
            session.__dict__[selectors.PRELOADED_VIEW] = view


def _refusal(view: selectors.TrialView | None, step: int) -> str:
    """Why ``groups.state`` would refuse this answer, judged on an unlocked read ("" if
    it would not): the same codes as ``answers.check_responses``."""
    if view is None:
        return "not_in_group"
    if view.phase in ("ended", "aborted"):
        return "ended"
    if view.phase == "waiting":
        return "not_started"
    if view.kicked or view.lobby:
        return "kicked"
    return "stale_step" if view.step != step else ""


#: (title, message) of the refusals whose answer does not come too late: the page waits on.
REFUSALS = {
    "already_answered": ("Your answer is already stored", "Your answer to this trial is already stored, so this "
                         "second answer was not stored. Please wait for the group to move on."),
    "skipped": ("This trial was closed for you", "This trial was closed for you, so this answer was not stored. "
                "Please wait for the group to move on."),
}  # fmt: skip
MOVED_ON = ("This trial is over", "The group has already moved on from this trial, so this answer was not stored. "
            "Open the study page again to continue.")  # fmt: skip


def _refusal_error(exc: GroupError) -> StepRefused:
    title, message = REFUSALS.get(exc.code, MOVED_ON)
    refused = StepRefused(message, code=exc.code, title=title)
    refused.__cause__ = exc
    return refused


def _refuse(exc: GroupError) -> None:
    raise _refusal_error(exc)


def register() -> None:
    from runner.handlers import register_handler

    register_handler("group_trial", LockstepGroupTrial, replace=True)
