"""A reload of the live page (``GET /run/<id>/`` of a run in the group part), served by a
short path: docs/groups.md "The live page", docs/performance.md "Reload".

The run page's general path (``runner.views.run``) reads the run, resolves its visit
(the handler's ``skip_visit``, stamping ``served_at``), reads the membership and renders
two templates with the step's content built anew: ~8 ms a GET, 6 statements, for a page
that is the same for every participant of the group at that step but for the CSRF token,
the visit's nonce and ``starts_at``. Here:

- **One statement** on PostgreSQL (``live_page_reads.GLANCE``): the run with its experiment, membership
  and group session, the handlers of the positions ``_visit`` looks at (the current one
  and the last one done), and md5 fingerprints of the experiment's forms and of the
  current form's questions (every column of their rows, with the questions' data
  formats): no form or question row crosses the wire or becomes a model instance. Only
  to render a shell, two more statements (pipelined) read those rows, each with the
  fingerprint of exactly the rows it returns (a window over them, the same text), so a
  shell is keyed by the definition it was rendered from. Elsewhere (SQLite) one round
  trip of three statements: the run, the forms, the questions; their values are hashed.
- **The page rendered once** per (group session, step, phase, form, visit, what the
  participant sees, definition) in this process and kept as a *shell*: the page with
  markers where the CSRF token, the nonce and ``starts_at`` go, filled in per GET.
  The definition is part of the key (``_key``: the experiment's fields, the step's
  shared parameters, its forms, the current form's questions with their data formats,
  read or fingerprinted on every GET), so an edited experiment, form or question is
  never shown stale; so are the step (a new step, a new shell) and what the participant
  sees (``mode``: the questions or the waiting screen once answered).
- **Anything else takes the general path** (``serve`` returns None): no group session,
  kicked or released, the session over or the loop left, missed steps, a visit not of
  the live page, a failing stimulus script, a pending message, content that is not
  pushed (``GROUP_LIVE_PUSH_CONTENT`` off: the stimulus script may read the
  participant's own run), or a visit shown for the first time since a navigation
  (``served_at`` not stamped and the last answer not given on the live page).

- **Warmed when a step starts** where reloads happen: once this process served a group
  session's reload, the shell of each of its next steps is rendered when the step
  commits, just before its state is published (``warm``, through
  ``groups.live.use_warm``, from the run of the last reload), so a burst of reloads of
  a new step (pages reloading together) finds it instead of waiting for one of them to
  read the rows and render. Once per step: the step's later states (answers coming in)
  read nothing more. A group whose pages do not reload costs nothing; one step after
  another with no reload (``WARM_STEPS``) stops it.

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
from collections import OrderedDict, namedtuple
from functools import partial

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.db import connection
from django.http import HttpResponse
from django.template.loader import render_to_string

from project.core.csrf import get_token
from project.core.rows import pipelined
from runner import selectors as runner_selectors
from runner.handlers import Page, get_handler
from runner.run_cookie import read_run_token

from . import live_page_reads as reads
from .live import known_starts_at
from .lockstep import LIVE_TEMPLATE
from .selectors import TrialView, trial_view

Brief = namedtuple("Brief", "pk order handler")  # a position, as much of it as ``_visit`` reads
_MARK = secrets.token_hex(8)  # markers no page can contain by chance
CSRF, NONCE, STARTS = f"csrf{_MARK}", f"nonce{_MARK}", f'"starts{_MARK}"'
_SPLIT = re.compile(f"({re.escape(CSRF)}|{re.escape(NONCE)}|{re.escape(STARTS)})")
_SAFE_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SHELLS = 64  # shells kept per process (a few per running group session)
_shells: OrderedDict = OrderedDict()  # key -> tuple of the page's parts, markers among them
_shells_lock = threading.Lock()
_building: dict = {}  # key -> lock held while one thread renders that shell
WARM_STEPS = 3  # a group session's shells are warmed until this many steps pass without a reload
_reloaded: dict[int, tuple[int, str, int]] = {}  # group session -> (step, run token, experiment) of a reload
_warmed: dict[int, int] = {}  # group session -> the step ``warm`` looked at last


def serve(request, experiment_id: int) -> HttpResponse | None:
    """The live page for this browser's run, or None: the general path serves it."""
    token = read_run_token(request.COOKIES, experiment_id)
    if token is None or _may_have_messages(request):
        return None
    if not getattr(settings, "GROUP_LIVE_PUSH_CONTENT", True):
        return None
    found = _lookup(token, experiment_id)
    if found is None:
        return None
    session, view, visit, key, rows = found
    parts = _cached(key) or _built_meanwhile(key)
    if parts is None:
        visit, parts = _render_shell(token, experiment_id, session, view, visit, rows)
    if parts is None:
        return None
    _release_connection()  # nothing below reads the database
    _note_reload(view, token, experiment_id)
    starts_at = known_starts_at(view.group_session_id, view.participant_code, view.step)
    values = {CSRF: get_token(request), NONCE: visit[0]["nonce"], STARTS: json.dumps(starts_at)}
    return HttpResponse("".join(values.get(part, part) for part in parts))


def _release_connection() -> None:
    """Hand the request's database connection back (to the pool) now that the reads are
    done, not when the request ends: a step's reloads come together, and at N=200 the
    pool's 20 connections stayed held through each reload's wait for the GIL after its
    read while the other reloads queued for one (docs/performance.md, "Session 14"). Not
    inside a transaction (a test's): closing there would roll it back."""
    if not connection.in_atomic_block:
        connection.close()


def _lookup(token: str, experiment_id: int):
    """(run, its lockstep view, its visit, the shell's key, the definition's rows or None)
    of a run whose visit this path may show; None when the general path serves it."""
    found = _glance(token, experiment_id) if connection.vendor == "postgresql" else _read(token, experiment_id)
    if found is None:
        return None
    membership, at, definition, rows = found
    session, view = membership.session, trial_view(membership)
    visit = _visit(session, view, at)
    if visit is None:
        return None
    return session, view, visit, _key(view, visit, session.experiment, definition), rows


def _note_reload(view: TrialView, token: str, experiment_id: int) -> None:
    with _shells_lock:
        _reloaded[view.group_session_id] = (view.step, token, experiment_id)
        _bound(_reloaded)


def _bound(kept: dict) -> None:
    while len(kept) > SHELLS:
        kept.pop(next(iter(kept)))


def warm(group_session_id: int, step: int) -> None:
    """Render the shell of ``step`` now if this process served a reload of the group session
    in the last ``WARM_STEPS`` steps (docs: the module), as a reload of that run would;
    once per step."""
    with _shells_lock:
        step_token = _reloaded.get(group_session_id)
        if step_token is None or not 0 <= step - step_token[0] <= WARM_STEPS or _warmed.get(group_session_id) == step:
            return
    _, token, experiment_id = step_token
    found = _lookup(token, experiment_id)
    if found is None or found[1].step != step:
        return
    session, view, visit, key, rows = found
    with _shells_lock:
        _warmed[group_session_id] = step
        _bound(_warmed)
    if _cached(key) is None:
        _render_shell(token, experiment_id, session, view, visit, rows)


def _render_shell(token: str, experiment_id: int, session, view: TrialView, visit, rows):
    """(visit, the page's parts) for a key not in this process's shells: from ``rows``
    (positions, questions, definition) if read already, else read now (PostgreSQL), the
    visit resolved again against them; (visit, None) where the general path serves it."""
    if rows is None:
        rows = _rows(token, experiment_id)
        visit = _visit(session, view, partial(_at, rows[0]))
        if visit is None:
            return None, None
    positions, questions, definition = rows
    current, position = visit
    if any(q.form_id != position.form_id for q in questions):  # the run moved on between reads
        return visit, None
    key = _key(view, visit, session.experiment, definition)
    return visit, _shell(key, session, view, position, positions, questions)


def _may_have_messages(request) -> bool:
    """A message may wait to be shown (``django.contrib.messages``: in its cookie, or in the
    session when the cookie overflowed): the general path renders it."""
    return CookieStorage.cookie_name in request.COOKIES or settings.SESSION_COOKIE_NAME in request.COOKIES


def _glance(token: str, experiment_id: int):
    """PostgreSQL, one statement: (membership with its run, experiment and group session;
    ``at``: the positions ``_visit`` looks at (current and last done), by order; the
    fingerprints of the experiment's forms and of the current form's questions; None: the
    rows themselves are read on a miss (``_rows``)); None without a membership."""
    found = reads.GLANCE.all(token, experiment_id)
    if not found:
        return None
    membership, current_pk, current_handler, done_handler, forms, questions = found[0]
    session = membership.session
    known = {}
    if current_pk is not None:
        known[session.current_order] = Brief(current_pk, session.current_order, current_handler)
    done = (session.state or {}).get("last_done")
    if done_handler is not None and isinstance(done, dict) and isinstance(done.get("order"), int):
        known.setdefault(done["order"], Brief(None, done["order"], done_handler))
    return membership, known.get, (forms, questions), None


def _rows(token: str, experiment_id: int):
    """PostgreSQL, a shell to render: (positions, the current form's questions, their
    fingerprints, each of the rows read with it: the text ``_glance`` aggregates)."""
    with pipelined():
        positions, questions = reads.FULL_POSITIONS.send(experiment_id), reads.FULL_QUESTIONS.send(token, experiment_id)
        positions, questions = positions(), questions()
    fingerprints = (positions[0][1] if positions else reads.NOTHING, questions[0][1] if questions else reads.NOTHING)
    return [p for p, _ in positions], [q for q, _ in questions], fingerprints


def _read(token: str, experiment_id: int):
    """SQLite, one round trip of three statements: (membership with its run, experiment
    and group session; ``at``; the definition's rows; (positions, questions, definition));
    None without a membership."""
    with pipelined():
        run = reads.RUN.send(token, experiment_id)
        positions = runner_selectors.positions_of(experiment_id)
        questions = reads.CURRENT_QUESTIONS.send(token, experiment_id)
        memberships, positions, questions = run(), positions(), questions()
    if not memberships:
        return None
    definition = [(_values(p), _values(p.form)) for p in positions]
    definition += [(_values(q), _values(q.question), _values(q.question.data_format)) for q in questions]
    return memberships[0], partial(_at, positions), definition, (positions, questions, definition)


def _at(positions: list, order):
    """The position with ``order`` (``runner.selectors.position_at``: else the next one)."""
    return runner_selectors.position_at(positions, order)


def _visit(session, view: TrialView, at):
    """(the run's current visit, its position) when it is a live-page visit this path may
    show as it is; None when the general path must resolve it. ``at(order)``: a position."""
    state = session.state or {}
    current = state.get("current")
    if not current or state.get("finished") or session.current_order != current.get("order"):
        return None
    position = at(current["order"])
    if position is None or position.order != current["order"] or not _live(position):
        return None
    if view.kicked or view.lobby == "released" or view.phase in ("ended", "aborted") or view.missed_steps:
        return None
    if view.exit_loop and view.responded:  # the loop is left on the next GET (skip_visit)
        return None
    if not _SAFE_NONCE.fullmatch(str(current.get("nonce", ""))):
        return None
    if not current.get("served_at") and not _entered_live(state, at):
        return None  # a first visit after a navigation: the general path notes when it was served
    return current, position


def _entered_live(state: dict, at) -> bool:
    """The visit on screen was entered by an answer given on the live page (its last
    visit was a live-page form): the page showed it without a GET."""
    order = (state.get("last_done") or {}).get("order")
    done = at(order) if isinstance(order, int) else None
    return done is not None and done.order == order and _live(done)


def _live(position) -> bool:
    return bool(getattr(get_handler(position.handler), "live_page", False))


def _key(view: TrialView, visit, experiment, definition) -> tuple:
    """What a shell is the page of: the group session, step, phase, what the participant
    sees, the visit, and a hash of the definition (the experiment's fields, the step's
    shared parameters, the forms and the current form's questions with their data
    formats: their rows or, on PostgreSQL, fingerprints of them): a change to any of it
    is a new shell."""
    current, position = visit
    definition = hash(repr((_values(experiment), repr(view.shared_params), definition)))
    return (view.group_session_id, view.step, view.phase, view.exit_loop, view.lobby, view.must_wait,
            position.pk, current["visit"], definition)  # fmt: skip


def _cached(key) -> tuple | None:
    with _shells_lock:
        parts = _shells.get(key)
        if parts is not None:
            _shells.move_to_end(key)
        return parts


def _built_meanwhile(key) -> tuple | None:
    """The shell another thread is rendering for ``key`` now, once it is done; None when
    none is. A step's first reloads come together: one reads the rows and renders, the
    others wait for it instead of each reading the forms and questions first (at N=10
    most of a step's reloads missed the cache together and read them)."""
    with _shells_lock:
        building = _building.get(key)
    if building is None:
        return None
    with building:
        return _cached(key)


def _values(instance) -> tuple:
    return tuple(getattr(instance, f.attname) for f in instance._meta.concrete_fields)


def _shell(key, session, view, position, positions, questions) -> tuple | None:
    """The page's parts for ``key``, rendered once per process (others wait for the first)."""
    parts = _cached(key)
    if parts is not None:
        return parts
    with _shells_lock:
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
        _reloaded.clear()
        _warmed.clear()
