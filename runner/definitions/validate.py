"""Validating a definition file: every problem, each with its line.

``validate_text`` is pure apart from importing callback modules (a callback that
does not resolve is an error at load time, SPEC section 4) and asking
``runner.policy`` about the data policy. Checks against the database (an
existing experiment with the same slug) are the loader's.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
from collections.abc import Callable

from runner.callbacks import CallbackError, resolve_callable, resolve_module
from runner.models import Handler

from .fields import Reader
from .flow import check_experiment_flow, read_form_flow
from .issues import Issue
from .nodes import YMap, YNode, YScalar, find_line, parse_yaml
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
        _check_callbacks(reader, definition)
        _check_policy(reader, definition, root)
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
        _resolve_gotos(reader, definition.forms, gotos)
        _check_sequence(reader, definition)


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
    handler = Handler.FORM_GENERIC.value
    handler_node = get("handler")
    if reader.present(handler_node):
        handler = reader.string(handler_node, f"{where}: handler", form_map.line)
        if handler and handler not in HANDLERS:
            reader.error(handler_node.line, f"{where}: unknown handler '{handler}' (known: {', '.join(HANDLERS)})")
    form = FormDef(
        name=name,
        handler=handler,
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
    for key in ("break_loop_button_text", "continue_button_text"):
        if reader.present(get(key)):
            setattr(form, key, reader.string(get(key), f"{where}: {key}", form_map.line, max_length=100))
    if reader.present(get("jspsych_width")):
        form.jspsych_width = reader.jspsych_width(get("jspsych_width"), f"{where}: jspsych_width")
    form.flow = read_form_flow(reader, form_map, where, handler)
    if reader.present(get("repeat")) != reader.present(get("goto")):
        present, missing = ("repeat", "goto") if reader.present(get("repeat")) else ("goto", "repeat")
        reader.error(form_map.line_of(present), f"{where}: a loop needs both repeat and goto ({missing} is missing)")
    questions = reader.sequence(get("questions"), f"{where}: questions")
    seen: dict[str, int] = {}
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
        form.questions.append(question)
    return form, get("goto")


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


def _resolve_gotos(reader: Reader, forms: list[FormDef], gotos: list[YNode | None]) -> None:
    positions: dict[str, int] = {}
    for position, form in enumerate(forms, start=1):
        if form.name in positions:
            first = forms[positions[form.name] - 1].line_of("name")
            reader.error(form.line_of("name"), f"form name '{form.name}' is used twice (first on line {first})")
        elif form.name:
            positions[form.name] = position
    for position, (form, node) in enumerate(zip(forms, gotos, strict=True), start=1):
        if not reader.present(node):
            continue
        where = f"form '{form.name}': goto"
        if not isinstance(node, YScalar):
            reader.error(node.line, f"{where} must be a form name or a 1-based form number")
            continue
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            target = node.value
            if not 1 <= target <= len(forms):
                reader.error(node.line, f"{where} {target} is not a form number (1..{len(forms)})")
                continue
        else:
            name = node.value if node.is_str else node.raw
            if name not in positions:
                reader.error(node.line, f"{where}: there is no form named '{name}'")
                continue
            target = positions[name]
        if target > position:
            reader.error(
                node.line,
                f"{where} points forward (to form {target}, this is form {position}); a loop can only go back",
            )
            continue
        form.goto = target


def loop_errors(loops: list[tuple[int, int]]) -> list[tuple[int, str]]:
    """Overlapping or nested loops among (goto, end) spans, as (end, message) pairs.

    Each loop runs from form ``goto`` to form ``end`` (its last form, which
    carries repeat/goto). Loops may follow each other but never share a form.
    """
    errors = []
    spans = sorted(loops, key=lambda span: span[1])
    for i, (start, end) in enumerate(spans):
        for other_start, other_end in spans[:i]:
            if start <= other_end and other_start <= end:
                kind = "contains" if start <= other_start else "overlaps"
                errors.append(
                    (
                        end,
                        f"the loop over forms {start}-{end} {kind} the loop over forms {other_start}-{other_end}; "
                        "nested or overlapping loops are not supported (put the loops one after the other)",
                    )
                )
                break
    return errors


def _check_sequence(reader: Reader, definition: ExperimentDef) -> None:
    forms = definition.forms
    loops = [(f.goto, pos) for pos, f in enumerate(forms, start=1) if f.goto is not None and f.repeat is not None]
    for end, message in loop_errors(loops):
        reader.error(forms[end - 1].line_of("repeat"), message)
    in_loop = {pos for start, end in loops for pos in range(start, end + 1)}
    for pos, form in enumerate(forms, start=1):
        if form.handler == Handler.GROUP_TRIAL and not definition.is_group:
            reader.error(
                form.line_of("handler"),
                f"form '{form.name}': group_trial is only for group experiments (is_group: true)",
            )
        if form.handler == Handler.FORM_END_SESSION and pos != len(forms):
            reader.error(
                form.line_of("handler"),
                f"form '{form.name}': form_end_session ends the session, so it must be the last form",
            )
        elif form.handler == Handler.FORM_END_SESSION and pos in in_loop:
            reader.error(form.line_of("handler"), f"form '{form.name}': form_end_session cannot be inside a loop")
        if form.break_loop_button and form.repeat is None:
            reader.warn(
                form.line_of("break_loop_button"),
                f"form '{form.name}': break_loop_button only shows on the last form of a loop",
            )
        if form.handler in (Handler.FORM_STIMULUS_S, Handler.FORM_FEEDBACK) and not form.stimulus_script:
            reader.warn(form.line, f"form '{form.name}': {form.handler} usually needs a stimulus_script")
    if definition.is_group and not any(f.handler == Handler.GROUP_TRIAL for f in forms):
        reader.warn(definition.line("is_group"), "a group experiment without a group_trial form never runs in lockstep")
    _check_shared_questions(reader, forms)


def _check_shared_questions(reader: Reader, forms: list[FormDef]) -> None:
    """A key on several forms is one Question: every occurrence must define it the same way."""
    first: dict[str, QuestionDef] = {}
    for form in forms:
        for question in form.questions:
            earlier = first.setdefault(question.key, question)
            if earlier is not question and not earlier.same_as(question):
                reader.error(
                    question.line,
                    f"question '{question.key}' is defined differently on line {earlier.line}; a key names one "
                    "question per experiment (give it the same text, type and options, or use another key)",
                )


def _check_callbacks(reader: Reader, definition: ExperimentDef) -> None:
    checked: dict[tuple[str, str], str | None] = {}

    def check(dotted: str, line: int, where: str, resolve: Callable) -> None:
        key = (resolve.__name__, dotted)
        if key not in checked:
            try:
                resolve(dotted)
                checked[key] = None
            except CallbackError as exc:
                checked[key] = str(exc)
        if checked[key]:
            reader.error(line, f"{where} '{dotted}' does not resolve: {checked[key]}")

    if definition.group_flow:
        check(definition.group_flow, definition.line("group_flow"), "group_flow", resolve_module)
    for form in definition.forms:
        for key in ("condition_script", "stimulus_script"):
            if getattr(form, key):
                check(getattr(form, key), form.line_of(key), f"form '{form.name}': {key}", resolve_callable)


def _check_policy(reader: Reader, definition: ExperimentDef, root: YMap) -> None:
    """Ask ``runner.policy.policy_errors`` (if that module exists) about data_policy."""
    if not definition.data_policy:
        return
    if importlib.util.find_spec("runner.policy") is None:
        reader.warn(definition.line("data_policy"), "data_policy was not checked (runner.policy is not installed)")
        return
    try:
        policy_errors = importlib.import_module("runner.policy").policy_errors
        messages = policy_errors(definition.data_policy)
    except Exception as exc:  # a broken checker must not let an unchecked policy through
        reader.error(definition.line("data_policy"), f"data_policy could not be checked: {type(exc).__name__}: {exc}")
        return
    for message in messages:
        path = message.split(":", 1)[0].split(" ", 1)[0]
        parts = path.split(".") if path.startswith("data_policy") else ["data_policy"]
        reader.error(find_line(root, parts, definition.line("data_policy")), message)


__all__ = ["loop_errors", "validate_text"]
