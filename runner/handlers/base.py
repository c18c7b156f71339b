"""The handler contract.

A handler decides, for one form position:

- ``prepare(run)`` - on entering a visit: call the stimulus script (if any) and
  interpret its result (:class:`Prepared`). An empty timeline means "end the loop".
- ``build_form(page, data)`` - the Django form that validates a POST.
- ``get_context(page, form)`` - extra template context; ``template_name`` renders it.
- ``process(page, form, post)`` - turn a valid POST into an :class:`Outcome`
  (answers, jsPsych trials, subject fields, whether to stay/advance/end).

Handlers never write to the database; ``runner.services`` stores what they return,
inside one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings

from runner.errors import BadCallbackResult
from runner.forms import QuestionsForm

JSPSYCH_FIELD = "_jspsych"


@dataclass(frozen=True)
class Prepared:
    """What entering a visit produced (kept in ``session.state['current']``)."""

    #: A list of trial dicts, or ``{"timeline": "<builder>", "params": {...}}`` naming a
    #: timeline builder registered by the package's jspsych.js.
    timeline: list | dict | None = None
    stimulus_id: int | None = None
    html: str | None = None
    empty: bool = False


@dataclass
class Page:
    """One visit of one form, as the view and handler see it."""

    session: Any
    position: Any  # ExperimentXForm
    current: dict  # session.state["current"]
    form_questions: list
    request: Any = None
    total_forms: int = 0

    @property
    def visit(self) -> int:
        return self.current["visit"]

    @property
    def timeline(self) -> list | dict | None:
        """The trial list, or a timeline builder ``{"timeline": name, "params": {...}}``."""
        return self.current.get("timeline")

    @property
    def stimulus_id(self) -> int | None:
        return self.current.get("stimulus_id")


@dataclass
class Outcome:
    """A processed POST. ``answers`` maps question key -> value; ``items`` holds extra
    named rows (item -> value, e.g. ``consent``); ``subject_fields`` go through the data
    policy onto the Subject. ``stay`` keeps the participant on this visit (e.g. waiting
    for an emailed link); ``leave_loop`` ends the loop; ``end_session`` ends the run."""

    answers: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    trials: list = field(default_factory=list)
    subject_fields: dict = field(default_factory=dict)
    stay: bool = False
    leave_loop: bool = False
    end_session: bool = False
    verify_email: str = ""
    #: Extra Response fields for every row of this visit (e.g. group_session_id, step, shared_params).
    row_fields: dict = field(default_factory=dict)
    #: Called last inside the transaction that stores this visit (after the rows, the next
    #: visit and the session are written); raising rolls all of it back. For work that
    #: locks something shared, so that the lock is held only until the commit just after
    #: (the lockstep handler records the answer with its group session here).
    before_commit: list = field(default_factory=list)
    #: Shared work that the answers arriving together do once (runner.batching), e.g. the
    #: lockstep handler's recording with its group session: see :class:`BatchStep`.
    batch_step: BatchStep | None = None


@dataclass(frozen=True)
class BatchStep:
    """Work an answer shares with others of the same ``key``, done once for all of them
    in the transaction that stores them (one answer alone is a batch of one).

    ``check(items)`` (the ``item`` of every answer of the key, in order) locks and decides
    without writing; it returns an object whose ``refusals[i]`` is the exception refusing
    item ``i`` (None: accepted). The runner stores nothing of a refused answer and raises
    ``refuse(exception)`` for it; after storing the accepted answers' rows and runs it
    calls the object's ``write()`` (statements only, which a batch sends together with its
    own, ``project.core.rows.pipelined``), then ``announce()`` (hooks and the like)."""

    key: tuple
    check: Callable[[list], Any]
    item: Any
    refuse: Callable[[Exception], Exception] = staticmethod(lambda exc: exc)


def _check_stimulus(stimulus_id) -> None:
    from runner.models import Stimulus

    if stimulus_id is not None and not Stimulus.objects.filter(pk=stimulus_id).exists():
        raise BadCallbackResult(f"stimulus id {stimulus_id!r} does not exist")


def _check_builder(spec: dict) -> None:
    """``{"timeline": "name", "params": {...}}``: a registered timeline builder and its parameters."""
    extra = set(spec) - {"timeline", "params"}
    if extra:
        raise BadCallbackResult(f"a timeline builder takes only 'timeline' and 'params', not {sorted(extra)}")
    if not isinstance(spec.get("timeline"), str) or not spec["timeline"].strip():
        raise BadCallbackResult("'timeline' must name a builder registered in the package's jspsych.js")
    if not isinstance(spec.get("params", {}), dict):
        raise BadCallbackResult("'params' of a timeline builder must be a dict")


class BaseHandler:
    """Questions, optionally after a jsPsych timeline from the stimulus script."""

    name = ""
    template_name = "runner/handlers/questions.html"
    #: "clear": forget the cached stimulus; "use": attach it; "set": cache this visit's stimulus.
    stimulus_cache = "clear"
    #: Entering this form ends the session (form_end_session).
    ends_session = False
    #: Shows a submit button (False for pages that are an end in themselves).
    has_submit = True

    # ---------------------------------------------------------------- entering
    def prepare(self, run) -> Prepared:
        script = run.position.stimulus_script
        if not script:
            return Prepared()
        from runner.run_context import call_callback

        result = call_callback(script, run)
        try:
            prepared = self.interpret(result)
            _check_stimulus(prepared.stimulus_id)
            return prepared
        except BadCallbackResult as exc:
            from runner.errors import CallbackFailed
            from runner.run_context import logger

            logger.error("callback %s returned an unusable value: %s", script, exc)
            raise CallbackFailed(script, form_order=run.position.order) from exc

    def interpret(self, result) -> Prepared:
        """Map a stimulus script's return value: a timeline list, a registered timeline builder
        (``{"timeline": "name", "params": {...}}``, either in place of the list), ``(timeline,
        stimulus_id)``, a stimulus id, an HTML string, or None."""
        if result is None:
            return Prepared()
        if isinstance(result, tuple):
            if len(result) != 2:
                raise BadCallbackResult("expected (timeline, stimulus_id)")
            timeline, stimulus_id = result
            return self._timeline(timeline, stimulus_id)
        if isinstance(result, list | dict):
            return self._timeline(result, None)
        if isinstance(result, int) and not isinstance(result, bool):
            return Prepared(stimulus_id=result)
        if isinstance(result, str):
            return Prepared(html=result)
        raise BadCallbackResult(f"unexpected stimulus script result of type {type(result).__name__}")

    @staticmethod
    def _timeline(timeline, stimulus_id) -> Prepared:
        if isinstance(timeline, dict):
            _check_builder(timeline)
        elif not isinstance(timeline, list):
            raise BadCallbackResult("a timeline must be a list of trial dicts or {'timeline': 'name', 'params': {...}}")
        if not timeline:
            return Prepared(empty=True)
        try:
            timeline = json.loads(json.dumps(timeline))
        except (TypeError, ValueError) as exc:
            raise BadCallbackResult(f"timeline is not JSON-serialisable: {exc}") from exc
        if stimulus_id is not None and not isinstance(stimulus_id, int):
            stimulus_id = getattr(stimulus_id, "pk", None)
        return Prepared(timeline=timeline, stimulus_id=stimulus_id)

    @classmethod
    def preload(cls, sessions: list) -> None:
        """Before the answers of ``sessions`` (visits of this handler, arriving together)
        are processed: read in one go what ``process`` would read for each (none here)."""

    def skip_visit(self, page: Page) -> str | None:
        """Asked before a visit is shown (GET): ``"leave_loop"`` ends the loop without
        storing anything, ``"skip"`` moves on to the next form, None shows the visit."""
        return None

    # ---------------------------------------------------------------- serving
    def build_form(self, page: Page, data=None) -> forms.Form:
        form = QuestionsForm(data, form_questions=page.form_questions)
        if page.timeline:
            form.fields[JSPSYCH_FIELD] = JsPsychDataField()
        return form

    def get_context(self, page: Page, form) -> dict:
        return {}

    # ---------------------------------------------------------------- processing
    def process(self, page: Page, form, post) -> Outcome:
        trials = form.cleaned_data.get(JSPSYCH_FIELD) or []
        return Outcome(answers=form.cleaned_answers(), trials=trials)


UNREADABLE = "The task data could not be read. Please reload the page."


def jspsych_limits() -> dict[str, int]:
    """The limits on posted jsPsych data (settings, with defaults; docs/security.md).

    ``bytes`` never exceeds Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` minus 64 KiB for the
    other fields, so a payload under it is never cut off by Django's own body limit first.
    """
    limit = int(getattr(settings, "JSPSYCH_DATA_MAX_BYTES", 2_000_000))
    body = getattr(settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
    if body is not None:
        limit = min(limit, int(body) - 64 * 1024)
    return {
        "bytes": limit,
        "trials": int(getattr(settings, "JSPSYCH_MAX_TRIALS", 10_000)),
        "depth": int(getattr(settings, "JSPSYCH_MAX_DEPTH", 32)),
    }


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _check_text(value: str) -> None:
    """NUL characters and lone surrogates (``"\\ud800"``): PostgreSQL cannot store them."""
    if "\x00" in value:
        raise ValueError("NUL character")
    if not value.isascii():
        value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate


def _check_shape(data, max_depth: int) -> None:
    """Raise ValueError for nesting deeper than ``max_depth`` or text PostgreSQL cannot
    store. Iterative, so hostile nesting cannot exhaust the stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > max_depth:
                raise ValueError("nested too deeply")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, sub in items:
                if isinstance(key, str):
                    _check_text(key)
                stack.append((sub, depth + 1))


def parse_trials(raw: str | None) -> list[dict]:
    """jsPsych data posted by the page: a JSON list of trial objects.

    Limits (:func:`jspsych_limits`): size in UTF-8 bytes, number of trials, nesting depth;
    NaN/Infinity and NUL characters are refused. Raises ``forms.ValidationError`` with a
    participant-readable message; nothing is stored then.
    """
    if not raw:
        return []
    limits = jspsych_limits()
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > limits["bytes"]:
        raise forms.ValidationError(
            f"The task produced more data ({size / 1e6:.1f} MB) than this study can store "
            f"({limits['bytes'] / 1e6:.1f} MB). Please contact the research team.",
            code="too_large",
        )
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise forms.ValidationError(UNREADABLE, code="unreadable") from exc
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise forms.ValidationError(UNREADABLE, code="not_trials")
    if len(data) > limits["trials"]:
        raise forms.ValidationError(
            f"The task produced more trials ({len(data)}) than this study can store ({limits['trials']}). "
            "Please contact the research team.",
            code="too_many_trials",
        )
    try:
        _check_shape(data, limits["depth"])
    except ValueError as exc:
        raise forms.ValidationError(UNREADABLE, code="unreadable") from exc
    return data


class JsPsychDataField(forms.Field):
    """Hidden field the jsPsych runner fills with ``jsPsych.data.get().values()`` as JSON."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs):
        kwargs.setdefault("required", True)
        kwargs.setdefault("error_messages", {"required": "The task above has not finished yet."})
        super().__init__(**kwargs)
        self.widget.attrs["data-jspsych-data"] = "1"

    def to_python(self, value):
        return parse_trials(value) if value else []

    def prepare_value(self, value):
        return json.dumps(value) if isinstance(value, list) else value

    def validate(self, value):
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
