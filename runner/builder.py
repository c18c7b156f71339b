"""The survey builder's server side: the definition it edits, saving it through the
loader, and the participant's view of one form for the live preview.

The builder edits an experiment as its definition (the mapping a definition file
holds: SPEC section 3), so saving is loading: ``save`` writes the mapping as YAML and
hands it to ``runner.definitions.load_text``, the same validation and the same
transaction as ``manage.py load_experiment``. Nothing the loader refuses is saved, and
everything saved dumps to a file that loads again.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from runner.definitions import (
    DefinitionError,
    LoadResult,
    definition_to_dict,
    experiment_to_definition,
    load_text,
    parse_definition,
)
from runner.definitions.dumper import mapping_yaml
from runner.definitions.schema import CHOICE_TYPES, RANGE_TYPES, WIDGETS, data_format_for
from runner.forms import QuestionsForm
from runner.models import DataFormat, Experiment, Handler, WidgetType

SOURCE = "builder.yaml"
#: A definition larger than this is not an experiment anyone builds by hand.
MAX_FORMS, MAX_QUESTIONS = 200, 500


class BuilderError(Exception):
    """A request the builder cannot act on (not a definition error: those list lines)."""


@dataclass
class SaveOutcome:
    ok: bool
    status: str = ""  # created | updated | unchanged
    errors: list[str] | None = None
    warnings: list[str] | None = None
    yaml: str = ""


def definition_of(experiment: Experiment) -> dict[str, Any]:
    """The experiment as the builder edits it: its definition file as a mapping."""
    return definition_to_dict(experiment_to_definition(experiment))


def save(*, experiment: Experiment, definition: dict, force: bool = False) -> SaveOutcome:
    """Load ``definition`` over ``experiment`` (same slug) as ``load_experiment`` would.
    Refused definitions change nothing and come back with every error by line of the
    YAML text (``yaml``) they were checked as."""
    _check_shape(definition)
    if definition.get("slug") != experiment.slug:
        raise BuilderError(f"The builder edits {experiment.slug}; the slug cannot change here.")
    text = mapping_yaml(definition)
    try:
        result: LoadResult = load_text(text=text, source=SOURCE, force=force)
    except DefinitionError as exc:
        return SaveOutcome(ok=False, errors=exc.lines(), yaml=text)
    warnings = [w.format(SOURCE) for w in result.warnings]
    return SaveOutcome(ok=True, status=result.status, warnings=warnings, yaml=text)


def save_text(*, experiment: Experiment, text: str, force: bool = False) -> SaveOutcome:
    """Load definition text typed or pasted into the builder's YAML view (see ``save``)."""
    if not isinstance(text, str):
        raise BuilderError("The definition text is a string.")
    try:
        definition, _ = parse_definition(text=text, source=SOURCE)
    except DefinitionError as exc:
        return SaveOutcome(ok=False, errors=exc.lines(), yaml=text)
    if definition.slug != experiment.slug:
        raise BuilderError(f"The builder edits {experiment.slug}; the slug cannot change here.")
    try:
        result = load_text(text=text, source=SOURCE, force=force)
    except DefinitionError as exc:
        return SaveOutcome(ok=False, errors=exc.lines(), yaml=text)
    return SaveOutcome(ok=True, status=result.status, warnings=[w.format(SOURCE) for w in result.warnings], yaml=text)


def _check_shape(definition: Any) -> None:
    if not isinstance(definition, dict):
        raise BuilderError("A definition is a JSON object.")
    forms = definition.get("forms")
    if isinstance(forms, list):
        if len(forms) > MAX_FORMS:
            raise BuilderError(f"At most {MAX_FORMS} forms.")
        questions = sum(len(f.get("questions") or []) for f in forms if isinstance(f, dict))
        if questions > MAX_QUESTIONS:
            raise BuilderError(f"At most {MAX_QUESTIONS} questions.")


def create(*, slug: str, title: str, is_group: bool = False) -> SaveOutcome | Experiment:
    """A new experiment to build: one page of questions and an end page. Returns the
    experiment, or the loader's refusal (e.g. a slug in use) as a SaveOutcome."""
    first = {"name": "trial", "handler": "group_trial"} if is_group else {"name": "questions"}
    definition = {"slug": slug, "title": title, "is_group": is_group,
                  "forms": [first, {"name": "end", "handler": "form_end_session"}]}  # fmt: skip
    text = mapping_yaml(definition)
    try:
        return load_text(text=text, source=SOURCE, create_only=True).experiment
    except DefinitionError as exc:
        return SaveOutcome(ok=False, errors=exc.lines(), yaml=text)


# ---- preview ---------------------------------------------------------------------------
def preview_form(form: Any) -> QuestionsForm:
    """The participant's form for one (unsaved) form of a definition: every question the
    builder can already show, with the widget and data format the loader would give it.
    Questions still being written (no key, unknown type, no choices yet) are left out."""
    form_questions = []
    for q in (form.get("questions") or []) if isinstance(form, dict) else []:
        question = _preview_question(q)
        if question is not None:
            form_questions.append(SimpleNamespace(question=question, required=bool(q.get("required"))))
    return QuestionsForm(form_questions=form_questions)


def _preview_question(q: Any) -> SimpleNamespace | None:
    if not isinstance(q, dict) or not isinstance(q.get("key"), str) or not q["key"]:
        return None
    widget = q.get("type")
    if widget not in WIDGETS:
        return None
    choices = [str(c) for c in q.get("choices") or [] if isinstance(c, str | int | float)]
    range_ = q.get("range") if isinstance(q.get("range"), dict) else {}
    range_ = {k: v for k, v in range_.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if widget in CHOICE_TYPES and not choices:
        return None
    if widget == WidgetType.SLIDER and not {"min", "max"} <= set(range_):
        return None
    df_type, choices, range_ = data_format_for(widget, choices if widget in CHOICE_TYPES else [], range_)
    data_format = DataFormat(df_type=df_type, choices=choices, range=range_ if widget in RANGE_TYPES else {})
    return SimpleNamespace(key=q["key"], text=str(q.get("text") or q["key"]), widget=widget, data_format=data_format)


def handler_choices() -> list[tuple[str, str]]:
    """Handlers by what they do, for the builder's menu (PyEnsemble names as values)."""
    labels = {
        Handler.FORM_GENERIC: "Questions",
        Handler.FORM_CONSENT: "Consent form",
        Handler.FORM_SUBJECT_REGISTER: "Registration (personal details)",
        Handler.FORM_SUBJECT_EMAIL: "Email address",
        Handler.FORM_LOGIN_W_EMAIL: "Log in with email",
        Handler.FORM_STIMULUS_S: "Stimulus and questions (jsPsych)",
        Handler.FORM_GENERIC_S: "Questions with a stimulus script",
        Handler.FORM_IMAGE_S: "Image and questions",
        Handler.FORM_FEEDBACK: "Feedback page",
        Handler.GROUP_TRIAL: "Group trial (live group sessions)",
        Handler.FORM_END_SESSION: "End page",
    }
    return [(str(h), f"{labels.get(h, h.label)} ({h})") for h in Handler]
