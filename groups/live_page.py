"""A reload of the live page (``GET /run/<id>/`` of a run in the group part), served by a
short path: docs/groups.md "The live page", docs/performance.md "Reload".

The run page's general path (``runner.views.run``) reads the run, resolves its visit
(the handler's ``skip_visit``, stamping ``served_at``), reads the membership and renders
two templates with the step's content built anew: ~8 ms a GET, 6 statements, for a page
that is the same for every participant of the group at that step but for the CSRF token,
the visit's nonce and ``starts_at``. Here:

- **One round trip, three statements** (pipelined on PostgreSQL): the run with its
  experiment, membership and group session; the experiment's forms; the questions of the
  run's current form.
- **The page rendered once** per (group session, step, phase, form, visit, what the
  participant sees, definition) in this process and kept as a *shell*: the page with
  markers where the CSRF token, the nonce and ``starts_at`` go, filled in per GET.
  The definition is part of the key (``_definition``: the experiment's fields, its forms,
  the current form's questions with their data formats, all read on every GET), so an
  edited experiment is never shown stale; so are the step and its shared parameters (a
  new step, a new shell) and what the participant sees (``mode``: the questions or the
  waiting screen once answered).
- **Anything else takes the general path** (``serve`` returns None): no group session,
  kicked or released, the session over or the loop left, missed steps, a visit not of
  the live page, a failing stimulus script, a pending message, content that is not
  pushed (``GROUP_LIVE_PUSH_CONTENT`` off: the stimulus script may read the
  participant's own run), or a visit shown for the first time since a navigation
  (``served_at`` not stamped and the last answer not given on the live page).

It reads only: no group-session lock, no write. A visit the run entered by an answer on
the live page gets no ``served_at`` from a reload (the page's reported onset says when it
was shown: ``onset_ms``), as it got none when the page showed it without a GET.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
from collections import OrderedDict

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string

from project.core.rows import Select, pipelined
from runner import selectors as runner_selectors
from runner.handlers import Page, get_handler
from runner.models import FormXQuestion
from runner.run_cookie import read_run_token

from .live import known_starts_at
from .lockstep import LIVE_TEMPLATE
from .models import Membership
from .selectors import TrialView, trial_view

_RUN = Select(
    Membership,
    related=("session", "session__experiment", "group_session"),
    where='t1."run_token" = %s AND t1."experiment_id" = %s',
)
# The questions of the form at the run's current order (``Session.current_order``, kept
# with ``state["current"]``), sent with the run's read: checked against it in ``_read``.
_CURRENT_QUESTIONS = Select(
    FormXQuestion,
    related=("question", "question__data_format"),
    where='t0."form_id" = (SELECT x."form_id" FROM "runner_experimentxform" x INNER JOIN "runner_session" s'
    ' ON x."experiment_id" = s."experiment_id" AND x."order" = s."current_order"'
    ' WHERE s."run_token" = %s AND s."experiment_id" = %s) ORDER BY t0."order"',
)
_MARK = secrets.token_hex(8)  # markers no page can contain by chance
CSRF, NONCE, STARTS = f"csrf{_MARK}", f"nonce{_MARK}", f'"starts{_MARK}"'
_SPLIT = re.compile(f"({re.escape(CSRF)}|{re.escape(NONCE)}|{re.escape(STARTS)})")
_SAFE_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SHELLS = 64  # shells kept per process (a few per running group session)
_shells: OrderedDict = OrderedDict()  # key -> tuple of the page's parts, markers among them
_shells_lock = threading.Lock()
_building: dict = {}  # key -> lock held while one thread renders that shell


def serve(request, experiment_id: int) -> HttpResponse | None:
    """The live page for this browser's run, or None: the general path serves it."""
    token = read_run_token(request.COOKIES, experiment_id)
    if token is None or _may_have_messages(request):
        return None
    if not getattr(settings, "GROUP_LIVE_PUSH_CONTENT", True):
        return None
    found = _read(token, experiment_id)
    if found is None:
        return None
    membership, positions, questions = found
    session, view = membership.session, trial_view(membership)
    visit = _visit(session, view, positions)
    if visit is None:
        return None
    current, position = visit
    key = (view.group_session_id, view.step, view.phase, view.exit_loop, view.lobby, view.must_wait,
           position.pk, current["visit"], _definition(session.experiment, positions, questions, view))  # fmt: skip
    parts = _shell(key, session, view, position, positions, questions)
    if parts is None:
        return None
    starts_at = known_starts_at(view.group_session_id, view.participant_code, view.step)
    values = {CSRF: get_token(request), NONCE: current["nonce"], STARTS: json.dumps(starts_at)}
    return HttpResponse("".join(values.get(part, part) for part in parts))


def _may_have_messages(request) -> bool:
    """A message may wait to be shown (``django.contrib.messages``: in its cookie, or in the
    session when the cookie overflowed): the general path renders it."""
    return CookieStorage.cookie_name in request.COOKIES or settings.SESSION_COOKIE_NAME in request.COOKIES


def _read(token: str, experiment_id: int):
    """(membership with its run, experiment and group session; the experiment's forms;
    the questions of the run's current form), in one round trip; None without a membership."""
    with pipelined():
        run = _RUN.send(token, experiment_id)
        positions = runner_selectors.positions_of(experiment_id)
        questions = _CURRENT_QUESTIONS.send(token, experiment_id)
        found = run(), positions(), questions()
    memberships, positions_, questions_ = found
    if not memberships:
        return None
    return memberships[0], positions_, questions_


def _visit(session, view: TrialView, positions: list):
    """(the run's current visit, its position) when it is a live-page visit this path may
    show as it is; None when the general path must resolve it."""
    state = session.state or {}
    current = state.get("current")
    if not current or state.get("finished") or session.current_order != current.get("order"):
        return None
    position = runner_selectors.position_at(positions, current["order"])
    if position is None or position.order != current["order"] or not _live(position):
        return None
    if view.kicked or view.lobby == "released" or view.phase in ("ended", "aborted") or view.missed_steps:
        return None
    if view.exit_loop and view.responded:  # the loop is left on the next GET (skip_visit)
        return None
    if not _SAFE_NONCE.fullmatch(str(current.get("nonce", ""))):
        return None
    if not current.get("served_at") and not _entered_live(state, positions):
        return None  # a first visit after a navigation: the general path notes when it was served
    return current, position


def _entered_live(state: dict, positions: list) -> bool:
    """The visit on screen was entered by an answer given on the live page (its last
    visit was a live-page form): the page showed it without a GET."""
    order = (state.get("last_done") or {}).get("order")
    done = runner_selectors.position_at(positions, order) if isinstance(order, int) else None
    return done is not None and done.order == order and _live(done)


def _live(position) -> bool:
    return bool(getattr(get_handler(position.handler), "live_page", False))


def _definition(experiment, positions: list, questions: list, view: TrialView) -> int:
    """A hash of everything of the definition (and the step's shared parameters) the page
    is made of: a change to any of it is a new shell."""
    rows = [_values(experiment), repr(view.shared_params)]
    rows += [(_values(p), _values(p.form)) for p in positions]
    rows += [(_values(q), _values(q.question), _values(q.question.data_format)) for q in questions]
    return hash(repr(rows))


def _values(instance) -> tuple:
    return tuple(getattr(instance, f.attname) for f in instance._meta.concrete_fields)


def _shell(key, session, view, position, positions, questions) -> tuple | None:
    """The page's parts for ``key``, rendered once per process (others wait for the first)."""
    with _shells_lock:
        parts = _shells.get(key)
        if parts is not None:
            _shells.move_to_end(key)
            return parts
        building = _building.setdefault(key, threading.Lock())
    with building:
        with _shells_lock:
            if key in _shells:
                return _shells[key]
        try:
            parts = _render(session, view, position, positions, questions)
        finally:
            with _shells_lock:
                _building.pop(key, None)
        if parts is not None:
            with _shells_lock:
                _shells[key] = parts
                while len(_shells) > SHELLS:
                    _shells.popitem(last=False)
    return parts


def _render(session, view, position, positions, questions) -> tuple | None:
    """The live page as the general path renders it (``runner.views.pages.visit_context``),
    with markers for the per-participant values; None if the visit is not shown on the
    live page (e.g. a failing stimulus script: the runner's error page)."""
    from runner.views.pages import visit_context

    session = copy.copy(session)  # this request's instance, never saved: the nonce becomes a marker
    session.state = {**session.state, "current": {**session.state["current"], "nonce": NONCE}}
    page = Page(session=session, position=position, current=session.state["current"],
                form_questions=questions, total_forms=len(positions))  # fmt: skip
    page._lockstep_view = view  # (groups.lockstep reads it once per page)
    handler = get_handler(position.handler)
    known = runner_selectors.known_reads(session.experiment_id, positions, position.form_id, questions)
    with runner_selectors.reads_once(known):
        context = visit_context(session, page, handler, positions)
    if handler.template_name != LIVE_TEMPLATE:
        return None
    context["live"] = {**context["live"], "starts_at": STARTS[1:-1]}
    context.update(csrf_token=CSRF, messages=())
    return tuple(_SPLIT.split(render_to_string(LIVE_TEMPLATE, context)))


def forget() -> None:
    """Drop every shell of this process (tests)."""
    with _shells_lock:
        _shells.clear()
