"""Validating a definition file: every problem, each with its line.

``validate_text`` is pure apart from importing callback modules (a callback that
does not resolve is an error at load time, SPEC section 4) and asking
``runner.policy`` about the data policy. Checks against the database (an
existing experiment with the same slug) are the loader's.
"""

from __future__ import annotations

import math
import re

from runner.models import Handler

from .checks import check_callbacks, check_policy, check_sequence, resolve_gotos
from .fields import Reader
from .flow import check_experiment_flow, read_form_flow
from .issues import Issue
from .nodes import YMap, YNode, YScalar, parse_yaml
from .schema import (
    CHOICE_TYPES,
    FORM_KEYS,
    HANDLERS,
    QUESTION_KEYS,
    RANGE_KEYS,
    RANGE_TYPES,
    TOP_KEYS,
    WIDGETS,
    ExperimentDef,
    FormDef,
    QuestionDef,
)


def validate_text(text: str) -> tuple[ExperimentDef | None, list[Issue]]:
    """Parse and check a definition; return (definition or None if any error, all issues)."""
    root, issues = parse_yaml(text)
    if issues:
        return None, issues
    reader = Reader()
    if root is None:
        reader.error(1, "the file is empty; a definition needs at least slug, title and forms")
        return None, reader.issues
    if not isinstance(root, YMap):
        reader.error(root.line, "the top level must be a mapping (slug: ..., title: ..., forms: ...)")
        return None, reader.issues
    definition = _read_experiment(reader, root)
    if not reader.failed:
        check_callbacks(reader, definition)
        check_policy(reader, definition, root)
    issues = sorted(reader.issues)
    return (None if reader.failed else definition), issues


def _read_experiment(reader: Reader, root: YMap) -> ExperimentDef:
    reader.unknown_keys(root, TOP_KEYS, "the experiment")
    get = root.get
    definition = ExperimentDef(
        slug=reader.slug(get("slug"), "slug", root.line),
        title=reader.string(get("title"), "title", root.line, required=True, max_length=200),
        description=reader.string(get("description"), "description", root.line),
        is_group=reader.boolean(get("is_group"), "is_group"),
        group_size=reader.integer(get("group_size"), "group_size", minimum=1),
        params=reader.json_mapping(get("params"), "params"),
        group_flow=reader.string(get("group_flow"), "group_flow", root.line, max_length=200),
        data_policy=reader.json_mapping(get("data_policy"), "data_policy"),
        sona_url=reader.url(get("sona_url"), "sona_url", root.line),
        prolific_completion_url=reader.url(get("prolific_completion_url"), "prolific_completion_url", root.line),
        lines={key: entry.key_line for key, entry in root.entries.items()},
    )
    definition.lines.setdefault("slug", root.line)
    if not definition.is_group:
        for key in ("group_flow", "group_size"):
            if reader.present(get(key)):
                reader.error(root.line_of(key), f"{key} is only for group experiments (set is_group: true)")
    definition.dropout, definition.lobby = check_experiment_flow(reader, root, definition.is_group)
    _read_forms(reader, root, definition)
    return definition


def _read_forms(reader: Reader, root: YMap, definition: ExperimentDef) -> None:
    """Read the form list into ``definition.forms``; cross-form checks once every form reads cleanly."""
    forms_node = root.get("forms")
    if not reader.present(forms_node):
        reader.error(root.line, "forms is required: list the experiment's forms in order")
        return
    forms_seq = reader.sequence(forms_node, "forms")
    if forms_seq is None:
        return
    if not forms_seq.items:
        reader.error(forms_seq.line, "forms must list at least one form")
    gotos: list[YNode | None] = []
    for position, node in enumerate(forms_seq.items, start=1):
        form, goto_node = _read_form(reader, node, position)
        if form is not None:
            definition.forms.append(form)
            gotos.append(goto_node)
    if len(definition.forms) == len(forms_seq.items):
        resolve_gotos(reader, definition.forms, gotos)
        check_sequence(reader, definition)


def _read_form(reader: Reader, node: YNode, position: int) -> tuple[FormDef | None, YNode | None]:
    where = f"form {position}"
    form_map = reader.mapping(node, where)
    if form_map is None:
        if not reader.present(node):
            reader.error(node.line, f"{where} is empty")
        return None, None
    get = form_map.get
    name = reader.slug(get("name"), f"{where}: name", form_map.line)
    where = f"form '{name}'" if name else where
    reader.unknown_keys(form_map, FORM_KEYS, where)
    form = FormDef(
        name=name,
        handler=_read_handler(reader, form_map, where),
        title=reader.string(get("title"), f"{where}: title", form_map.line, max_length=200),
        header=reader.string(get("header"), f"{where}: header", form_map.line),
        footer=reader.string(get("footer"), f"{where}: footer", form_map.line),
        stimulus_script=_dotted(reader, get("stimulus_script"), f"{where}: stimulus_script", form_map.line),
        condition_script=_dotted(reader, get("condition_script"), f"{where}: condition_script", form_map.line),
        repeat=reader.integer(get("repeat"), f"{where}: repeat", minimum=1),
        break_loop_button=reader.boolean(get("break_loop_button"), f"{where}: break_loop_button"),
        line=form_map.line,
        lines={key: entry.key_line for key, entry in form_map.entries.items()},
    )
    _read_form_options(reader, form_map, form, where)
    form.questions.extend(_read_questions(reader, form_map, where))
    return form, get("goto")


def _read_handler(reader: Reader, form_map: YMap, where: str) -> str:
    """The form's handler (``form_generic`` when not given); an unknown one is an error."""
    handler = Handler.FORM_GENERIC.value
    handler_node = form_map.get("handler")
    if reader.present(handler_node):
        handler = reader.string(handler_node, f"{where}: handler", form_map.line)
        if handler and handler not in HANDLERS:
            reader.error(handler_node.line, f"{where}: unknown handler '{handler}' (known: {', '.join(HANDLERS)})")
    return handler


def _read_form_options(reader: Reader, form_map: YMap, form: FormDef, where: str) -> None:
    """The optional button texts and jsPsych width onto ``form``; a loop needs repeat and goto both."""
    get = form_map.get
    for key in ("break_loop_button_text", "continue_button_text"):
        if reader.present(get(key)):
            setattr(form, key, reader.string(get(key), f"{where}: {key}", form_map.line, max_length=100))
    if reader.present(get("jspsych_width")):
        form.jspsych_width = reader.jspsych_width(get("jspsych_width"), f"{where}: jspsych_width")
    form.flow = read_form_flow(reader, form_map, where, form.handler)
    if reader.present(get("repeat")) != reader.present(get("goto")):
        present, missing = ("repeat", "goto") if reader.present(get("repeat")) else ("goto", "repeat")
        reader.error(form_map.line_of(present), f"{where}: a loop needs both repeat and goto ({missing} is missing)")


def _read_questions(reader: Reader, form_map: YMap, where: str) -> list:
    """The form's questions that read cleanly; a key used twice is an error (the first stays)."""
    questions = reader.sequence(form_map.get("questions"), f"{where}: questions")
    found, seen = [], {}
    for index, qnode in enumerate(questions.items if questions else [], start=1):
        question = _read_question(reader, qnode, f"{where}, question {index}")
        if question is None:
            continue
        if question.key in seen:
            reader.error(
                question.line,
                f"{where}: question key '{question.key}' is used twice (first on line {seen[question.key]})",
            )
            continue
        seen[question.key] = question.line
        found.append(question)
    return found


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _dotted(reader: Reader, node: YNode | None, where: str, line: int) -> str:
    text = reader.string(node, where, line, max_length=200).strip()
    if text and not _DOTTED.match(text):
        reader.error(node.line, f"{where} '{text}' is not a dotted path like package.module.function")
    return text


def _read_question(reader: Reader, node: YNode, where: str) -> QuestionDef | None:
    qmap = reader.mapping(node, where)
    if qmap is None:
        if not reader.present(node):
            reader.error(node.line, f"{where} is empty")
        return None
    reader.unknown_keys(qmap, QUESTION_KEYS, where)
    get = qmap.get
    key = reader.slug(get("key"), f"{where}: key", qmap.line)
    where = f"question '{key}'" if key else where
    widget = reader.string(get("type"), f"{where}: type", qmap.line, required=True)
    if widget and widget not in WIDGETS:
        reader.error(get("type").line, f"{where}: unknown type '{widget}' (known: {', '.join(WIDGETS)})")
    question = QuestionDef(
        key=key,
        text=reader.string(get("text"), f"{where}: text", qmap.line, required=True),
        widget=widget,
        required=reader.boolean(get("required"), f"{where}: required"),
        line=qmap.line,
    )
    choices_node, range_node = get("choices"), get("range")
    if widget in CHOICE_TYPES:
        question.choices = _read_choices(reader, choices_node, where, qmap.line_of("type"))
    elif reader.present(choices_node) and widget in WIDGETS:
        reader.error(qmap.line_of("choices"), f"{where}: choices are only for {', '.join(sorted(CHOICE_TYPES))}")
    if widget in RANGE_TYPES:
        question.range = _read_range(reader, range_node, where)
        if widget == "slider" and not reader.present(range_node):
            reader.error(qmap.line_of("type"), f"{where}: a slider needs a range: {{min: ..., max: ...}}")
    elif reader.present(range_node) and widget in WIDGETS:
        reader.error(qmap.line_of("range"), f"{where}: range is only for {', '.join(sorted(RANGE_TYPES))}")
    return question


def _read_choices(reader: Reader, node: YNode | None, where: str, line: int) -> list[str]:
    if not reader.present(node):
        reader.error(line, f"{where}: a choice question needs choices: [..., ...]")
        return []
    seq = reader.sequence(node, f"{where}: choices")
    if seq is None:
        return []
    if not seq.items:
        reader.error(seq.line, f"{where}: choices must not be empty")
    choices: list[str] = []
    for item in seq.items:
        if not isinstance(item, YScalar) or item.is_null:
            reader.error(item.line, f"{where}: each choice must be a piece of text")
            continue
        text = item.raw if not item.is_str else item.value
        if text in choices:
            reader.error(item.line, f"{where}: choice '{text}' is listed twice")
        choices.append(text)
    return choices


def _read_range(reader: Reader, node: YNode | None, where: str) -> dict:
    rmap = reader.mapping(node, f"{where}: range")
    if rmap is None:
        return {}
    reader.unknown_keys(rmap, RANGE_KEYS, f"{where}: range")
    values: dict = {}
    for key in RANGE_KEYS:
        item = rmap.get(key)
        if not reader.present(item):
            if key != "step":
                reader.error(rmap.line, f"{where}: range needs {key}")
            continue
        value = item.value if isinstance(item, YScalar) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            reader.error(item.line, f"{where}: range {key} must be a number")
            continue
        values[key] = value
    if "min" in values and "max" in values and values["min"] >= values["max"]:
        reader.error(rmap.line, f"{where}: range min ({values['min']}) must be below max ({values['max']})")
    if "step" in values and values["step"] <= 0:
        reader.error(rmap.line_of("step"), f"{where}: range step must be above 0")
    return values if len(values) == len([k for k in RANGE_KEYS if k in rmap.entries]) else {}


__all__ = ["validate_text"]
