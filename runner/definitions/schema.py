"""The validated shape of an experiment definition, and its canonical dict form.

``ExperimentDef`` is what a valid file means, independent of YAML and of the
database: the validator builds it from a file, ``dumper.experiment_to_definition``
builds it from the database, and ``definition_to_dict`` turns either into the
dict that is written as YAML. Two experiments are the same exactly when their
dicts are equal (the loader uses this to skip writing an unchanged file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.models import DataFormat, Handler, WidgetType
from runner.models.design import CHOICE_WIDGETS, RANGE_WIDGETS

from .flow import DROPOUT_KEYS, FORM_FLOW_KEYS, LOBBY_KEYS, flow_dict

# Experiment fields a file sets one to one (besides its slug and forms).
EXPERIMENT_FIELDS = (
    "title",
    "description",
    "is_group",
    "group_size",
    "params",
    "group_flow",
    "data_policy",
    "sona_url",
    "prolific_completion_url",
    "dropout",
    "lobby",
)
TOP_KEYS = ("slug", *EXPERIMENT_FIELDS, "forms")
FORM_KEYS = (
    "name",
    "handler",
    "title",
    "header",
    "footer",
    "questions",
    "stimulus_script",
    "condition_script",
    "repeat",
    "goto",
    "break_loop_button",
    "break_loop_button_text",
    "continue_button_text",
    "jspsych_width",
    *FORM_FLOW_KEYS,
)
QUESTION_KEYS = ("key", "text", "type", "choices", "range", "required")
RANGE_KEYS = ("min", "max", "step")

HANDLERS = tuple(Handler.values)
WIDGETS = tuple(WidgetType.values)
CHOICE_TYPES = frozenset(str(w) for w in CHOICE_WIDGETS)
RANGE_TYPES = frozenset(str(w) for w in RANGE_WIDGETS)
DEFAULT_BREAK_TEXT = "Leave the loop"
DEFAULT_CONTINUE_TEXT = "Next"
DEFAULT_JSPSYCH_WIDTH = "normal"


@dataclass
class QuestionDef:
    key: str
    text: str
    widget: str
    choices: list[str] = field(default_factory=list)
    range: dict[str, int | float] = field(default_factory=dict)
    required: bool = False
    line: int = 0

    def data_format(self) -> tuple[str, list[str], dict]:
        """(df_type, choices, range) of the DataFormat this question's answers have."""
        return data_format_for(self.widget, self.choices, self.range)

    def same_as(self, other: QuestionDef) -> bool:
        """Whether two occurrences define the same Question (``required`` is per form)."""
        return (self.text, self.widget, self.choices, self.range) == (
            other.text,
            other.widget,
            other.choices,
            other.range,
        )


@dataclass
class FormDef:
    name: str
    handler: str = Handler.FORM_GENERIC.value
    title: str = ""
    header: str = ""
    footer: str = ""
    questions: list[QuestionDef] = field(default_factory=list)
    stimulus_script: str = ""
    condition_script: str = ""
    repeat: int | None = None
    goto: int | None = None  # 1-based order of the loop's first form
    break_loop_button: bool = False
    break_loop_button_text: str = DEFAULT_BREAK_TEXT
    continue_button_text: str = DEFAULT_CONTINUE_TEXT
    jspsych_width: str = DEFAULT_JSPSYCH_WIDTH  # "normal", "wide" or a number of pixels (as text)
    flow: dict[str, Any] = field(default_factory=dict)  # group_trial timer / auto-advance (runner.definitions.flow)
    line: int = 0
    lines: dict[str, int] = field(default_factory=dict)  # form key -> line

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


@dataclass
class ExperimentDef:
    slug: str
    title: str
    description: str = ""
    is_group: bool = False
    group_size: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    group_flow: str = ""
    data_policy: dict[str, Any] = field(default_factory=dict)
    sona_url: str = ""
    prolific_completion_url: str = ""
    dropout: dict[str, Any] = field(default_factory=dict)  # {after_seconds, policy}
    lobby: dict[str, Any] = field(default_factory=dict)  # {min_size, max_size, wait_seconds, release_completion_code}
    forms: list[FormDef] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # top-level key -> line

    def line(self, key: str) -> int:
        return self.lines.get(key, self.lines.get("slug", 1))

    def structure(self) -> list[tuple]:
        """The form sequence as a running session sees it (names, order, loops)."""
        return [(f.name, f.handler, f.repeat, f.goto) for f in self.forms]


def data_format_for(widget: str, choices: list[str], range_: dict) -> tuple[str, list[str], dict]:
    """The DataFormat (type, choices, range) implied by a widget and its options."""
    if widget in CHOICE_TYPES:
        return DataFormat.Type.ENUM.value, list(choices), {}
    if widget == WidgetType.TEXT:
        return DataFormat.Type.STRING.value, [], {}
    if widget == WidgetType.TEXTAREA:
        return DataFormat.Type.TEXT.value, [], {}
    whole = bool(range_) and all(isinstance(v, int) and not isinstance(v, bool) for v in range_.values())
    return (DataFormat.Type.INT if whole else DataFormat.Type.FLOAT).value, [], dict(range_)


def _question_dict(question: QuestionDef) -> dict[str, Any]:
    out: dict[str, Any] = {"key": question.key, "text": question.text, "type": question.widget}
    if question.choices:
        out["choices"] = list(question.choices)
    if question.range:
        out["range"] = {k: question.range[k] for k in RANGE_KEYS if k in question.range}
    out["required"] = question.required
    return out


def _form_dict(form: FormDef, names_by_order: dict[int, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": form.name, "handler": form.handler}
    for key in ("title", "header", "footer", "stimulus_script", "condition_script"):
        if getattr(form, key):
            out[key] = getattr(form, key)
    if form.questions:
        out["questions"] = [_question_dict(q) for q in form.questions]
    if form.repeat is not None:
        out["repeat"] = form.repeat
    if form.goto is not None:
        out["goto"] = names_by_order.get(form.goto, form.goto)
    if form.break_loop_button:
        out["break_loop_button"] = True
    if form.break_loop_button_text != DEFAULT_BREAK_TEXT:
        out["break_loop_button_text"] = form.break_loop_button_text
    if form.continue_button_text != DEFAULT_CONTINUE_TEXT:
        out["continue_button_text"] = form.continue_button_text
    if form.jspsych_width != DEFAULT_JSPSYCH_WIDTH:
        width = form.jspsych_width
        out["jspsych_width"] = int(width) if width.isdigit() else width
    out.update(flow_dict(form.flow, FORM_FLOW_KEYS))
    return out


def definition_to_dict(definition: ExperimentDef) -> dict[str, Any]:
    """The canonical dict of a definition: defaults left out, keys in file order."""
    out: dict[str, Any] = {"slug": definition.slug, "title": definition.title}
    if definition.description:
        out["description"] = definition.description
    out["is_group"] = definition.is_group
    if definition.group_size is not None:
        out["group_size"] = definition.group_size
    if definition.group_flow:
        out["group_flow"] = definition.group_flow
    if definition.params:
        out["params"] = definition.params
    for key in ("sona_url", "prolific_completion_url"):
        if getattr(definition, key):
            out[key] = getattr(definition, key)
    if definition.data_policy:
        out["data_policy"] = definition.data_policy
    if definition.dropout:
        out["dropout"] = flow_dict(definition.dropout, DROPOUT_KEYS)
    if definition.lobby:
        out["lobby"] = flow_dict(definition.lobby, LOBBY_KEYS)
    names = [f.name for f in definition.forms]
    unique = len(set(names)) == len(names)
    names_by_order = {i: name for i, name in enumerate(names, start=1)} if unique else {}
    out["forms"] = [_form_dict(f, names_by_order) for f in definition.forms]
    return out


def widget_format_problem(widget: str, df_type: str, choices, range_) -> str | None:
    """Why a question of ``widget`` cannot store answers of this data format, or None.

    The rule the loader applies to a file (a file's widget implies its format), put for
    the editor, where a question and a data format are chosen apart: whatever the editor
    accepts must dump to a file that loads again."""
    has_range = bool(range_) and "min" in range_ and "max" in range_
    if widget in CHOICE_TYPES:
        if df_type != DataFormat.Type.ENUM or not choices:
            return f"a {widget} question needs a data format of type enum with choices"
        return None
    if widget in RANGE_TYPES:
        if df_type not in (DataFormat.Type.INT, DataFormat.Type.FLOAT):
            return f"a {widget} question stores numbers: choose a data format of type int or float"
        if widget == WidgetType.SLIDER and not has_range:
            return "a slider needs a range: {min: ..., max: ...}"
        return None
    expected = data_format_for(widget, [], {})[0]
    if df_type != expected or choices or range_:
        return f"a {widget} question needs a data format of type {expected} (no choices, no range)"
    return None
