"""What the live page shows for a step (docs/groups.md, "The live page"): the group_trial
form's questions rendered as HTML, the jsPsych timeline its stimulus script builds with
the step's shared parameters, its ``preload`` list and the progress figures.

- ``group_content(group_session_id, step)``: the content pushed to every page of the group,
  built once per step per server process with the run of one participant (the first
  active one, by pseudonym, who has not answered the step). A group_trial stimulus
  script should therefore depend on ``run.group`` and ``run.params`` only; one that reads
  the participant's own run needs ``GROUP_LIVE_PUSH_CONTENT = False``.
- ``participant_content(session)``: the same for one participant's own run (the content
  GET, the live page's first render).

Both read only: no group-session lock, no write (the stimulus script runs as on any GET).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict

from django.template.loader import render_to_string

from project.core.rows import Select, pipelined
from runner import selectors as runner_selectors
from runner.errors import RunError
from runner.models import ExperimentXForm

from . import selectors
from .live import known_starts_at
from .models import GroupSession, Membership

logger = logging.getLogger(__name__)
QUESTIONS_TEMPLATE = "groups/includes/live_questions.html"
_built: OrderedDict = OrderedDict()  # (group session, step) -> the content frame's text, this process
_built_lock = threading.Lock()
ACTIVE = (Membership.Status.JOINED, Membership.Status.WAITING, Membership.Status.ANSWERING, Membership.Status.RESPONDED)
# A few active runs of a group session, those who have not answered the step first, with
# their sessions, experiment and group session; and the forms of its experiment. Both are
# sent together (``send_reads``: by the change that starts a step, in its lock's round trip,
# or by ``group_content`` when no change read them here).
_MEMBERS = Select(
    Membership,
    related=("session", "session__experiment", "group_session"),
    where=f't0."group_session_id" = %s AND t0."status" IN ({", ".join(["%s"] * len(ACTIVE))})'
    ' ORDER BY CASE WHEN t0."responded_step" = %s THEN 1 ELSE 0 END, t0."pseudonym" LIMIT 4',
)
# The same runs with their sessions only, read inside the change that starts the step: its
# locked group session (and the experiment read with it) stand in for the other two joins,
# which cost more to plan and execute than the rest of the read.
_RUNS = Select(Membership, related=("session",), where=_MEMBERS.where)
_GROUP_POSITIONS = Select(
    ExperimentXForm,
    related=("form",),
    where=f't0."experiment_id" = (SELECT g."experiment_id" FROM "{GroupSession._meta.db_table}" g WHERE g."id" = %s)'
    ' ORDER BY t0."order"',
)


def _page(session):
    """(page, handler, loop rounds) of the run's current visit, or None when it is not a
    lockstep trial."""
    from runner.views.pages import page_for

    if not (session.state or {}).get("current") or session.state.get("finished"):
        return None
    try:
        page, handler, positions = page_for(session)
    except (LookupError, AttributeError, TypeError):  # the experiment changed under the run
        return None
    return found_for(page, handler, positions)


def found_for(page, handler, positions=None):
    """(page, handler, loop rounds) of a visit the caller has already resolved, or None when
    it is not a lockstep trial (``positions``: the experiment's, read when not given)."""
    from runner import selectors as runner_selectors
    from runner.flow import loop_containing

    if page.position is None or not getattr(handler, "live_page", False):  # (groups.lockstep's handler)
        return None
    if positions is None:
        positions = runner_selectors.positions(page.session.experiment)
    loop = loop_containing(runner_selectors.steps_of(positions), page.position.order)
    return page, handler, (max(loop.repeat, 1) if loop else None)


def is_lockstep_visit(session) -> bool:
    """The run is (still) in the group part: its current visit is a lockstep trial of a
    group session that is not over, and it was not removed."""
    view = selectors.trial_for(session)
    if view is None or view.kicked or view.phase in ("ended", "aborted") or (view.exit_loop and view.responded):
        return False
    return _page(session) is not None


def ident(session) -> dict | None:
    """The run's current visit as the answer must name it (``_order``, ``_visit``, ``_nonce``)."""
    current = (session.state or {}).get("current")
    if not current or session.state.get("finished"):
        return None
    return {"order": current["order"], "visit": current["visit"], "nonce": current["nonce"]}


def build(session, *, step: int, shared_params: dict | None = None, found=None, form=None) -> dict | None:
    """The content of the run's current lockstep visit at ``step``, or None if it is not one."""
    found = found or _page(session)
    if found is None:
        return None
    page, handler, rounds = found
    form = form if form is not None else handler.build_form(page)
    timeline, preload, problem = _timeline(handler, page)
    problem = problem or {"message": "", "code": "", "title": ""}
    position = page.position
    from runner import jspsych_package

    package = jspsych_package.page_script(session.experiment_id, position.stimulus_script) if timeline else None
    return {
        "type": "group.content",
        "step": step,
        "order": position.order,
        "form": position.form.name,
        "title": position.form.title or "",
        "html": questions_html(page, handler, form, has_timeline=bool(timeline)),
        "timeline": timeline,
        "preload": preload,
        "package": package,
        "problem": problem["message"],
        "problem_code": problem["code"],
        "problem_title": problem["title"],
        "shared_params": shared_params if shared_params is not None else _shared_params(session),
        "loop_rounds": rounds,
        "on_timeout": on_timeout(position),
    }


def on_timeout(position) -> str | None:
    """What the page does when the step's timer runs out (issue 20): ``submit`` (send what
    is filled), ``skip``; None for a step without a timer."""
    flow = position.flow or {}
    return flow.get("on_timeout", "submit") if flow.get("timeout_seconds") is not None else None


def _shared_params(session) -> dict:
    view = selectors.trial_for(session)
    return view.shared_params if view is not None else {}


def questions_html(page, handler, form, *, has_timeline: bool) -> str:
    return render_to_string(
        QUESTIONS_TEMPLATE,
        {"form": form, "page": page, "position": page.position, "handler": handler, "has_timeline": has_timeline,
         "show_break_loop": bool(page.position.break_loop_button and page.position.repeat is not None)},
    )  # fmt: skip


def _timeline(handler, page) -> tuple[list | dict | None, list | None, dict | None]:
    """(timeline, preload, problem): a script may return ``{"timeline": [...], "preload": [...]}``."""
    script = page.position.stimulus_script
    if not script:
        return None, None, None
    from runner.run_context import call_callback, make_run

    try:
        result = call_callback(script, make_run(session=page.session, position=page.position, visit=page.visit))
        preload = None
        if isinstance(result, dict) and isinstance(result.get("timeline"), list):
            preload = [str(url) for url in result.get("preload") or []][:500] or None
            result = result["timeline"]
        return handler.interpret(result).timeline, preload, None
    except RunError as exc:  # a failing stimulus script: the page says so (the runner's error text)
        return None, None, {"message": exc.message, "code": exc.code, "title": exc.title}


def send_reads(group_session_id: int, step: int | None = None):
    """Send the reads ``group_content`` builds from (pipelined by the caller: ``rows.pipelined``)
    and return a function giving them. ``step``: the step the content is for (its runs
    that answered it come last); None inside the change that starts it (nobody has): then
    the runs come with their sessions only (``_RUNS``; ``group_content``'s ``gs`` gives the rest)."""
    members = (_MEMBERS if step is not None else _RUNS).send(group_session_id, *ACTIVE, -1 if step is None else step)
    positions = _GROUP_POSITIONS.send(group_session_id)
    return lambda: (members(), positions())


def group_content(group_session_id: int, step: int, *, reads=None, gs=None) -> dict | None:
    """The content pushed for ``step`` (see the module), or None when no participant is
    on a lockstep visit. ``reads``: ``send_reads``'s rows, read under the lock of the change
    that started the step, whose group session ``gs`` (as it committed) the runs' views
    are taken from; by default they are read now."""
    # The first run on the form will do: one round trip for the runs and the forms, one for
    # that form's questions; the run's lockstep position is the one read with it.
    if reads is None:
        with pipelined():
            members, positions = send_reads(group_session_id, step)()
        gs = None  # (the runs' views are those read)
    else:
        members, positions = reads
    for member in members:
        if gs is not None:
            member.group_session, member.session.experiment = gs, gs.experiment
        session, view = member.session, selectors.trial_view(member)
        with runner_selectors.reads_once({("positions", session.experiment_id): positions}):
            session.__dict__[selectors.PRELOADED_VIEW] = view
            content = build(session, step=step, shared_params=view.shared_params)
        if content is not None:
            return content
    return None


def participant_content(session, *, view=None, found=None, form=None) -> dict:
    """The content GET's reply for ``session`` (docs: live-protocol): mode, step, visit and
    the content of its own current visit (``view``/``found``: already read by the caller)."""
    view = view or selectors.trial_for(session)
    base = {"mode": "leave", "step": None, "phase": None, "starts_at": None, "visit": ident(session), "content": None}
    if view is None or view.kicked or view.phase in ("ended", "aborted") or (view.exit_loop and view.responded):
        return base
    base.update(step=view.step, phase=view.phase,
                starts_at=known_starts_at(view.group_session_id, view.participant_code, view.step))  # fmt: skip
    found = found or _page(session)
    if found is None:
        return base
    if view.must_wait:
        base["mode"] = "waiting"
        return base
    base["mode"] = "form"
    base["content"] = build(session, step=view.step, shared_params=view.shared_params, found=found, form=form)
    return base


def content_text(group_session_id: int, step: int, *, reads=None, gs=None) -> str | None:
    """``group_content`` as the frame's text (realtime's ``step_content`` port)."""
    content = group_content(group_session_id, step, reads=reads, gs=gs)
    return None if content is None else json.dumps(content, separators=(",", ":"), allow_nan=False)


def prebuild(group_session_id: int, step: int, *, reads=None, gs=None) -> None:
    """Build the pushed content of a step that has just started, in the thread that
    publishes it (after the commit, before ``starts_at`` is chosen), so that this
    process's sockets get it with the state, without a trip to the database thread
    (``reads``, ``gs``: see ``group_content``)."""
    try:
        text = content_text(group_session_id, step, reads=reads, gs=gs)
    except Exception:
        logger.exception("content of group session %s step %s could not be built", group_session_id, step)
        return
    with _built_lock:
        _built[(group_session_id, step)] = text
        while len(_built) > 16:
            _built.popitem(last=False)


def built_text(group_session_id: int, step: int):
    """The text ``prebuild`` made for this step in this process; ``KeyError`` if none."""
    with _built_lock:
        return _built[(group_session_id, step)]
