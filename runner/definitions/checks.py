"""Checks across a definition's forms, once each form reads cleanly (``validate_text``):
goto targets, the loops and the sequence, shared question keys, callbacks that must
resolve, and the data policy."""

from __future__ import annotations

from collections.abc import Callable

from runner.callbacks import CallbackError, resolve_callable, resolve_module
from runner.models import Handler

from .fields import Reader
from .nodes import YMap, YNode, YScalar, find_line
from .schema import ExperimentDef, FormDef, QuestionDef


def resolve_gotos(reader: Reader, forms: list[FormDef], gotos: list[YNode | None]) -> None:
    """Names must be unique; each ``goto`` (a name or a 1-based number) becomes the number
    of an earlier form (a loop only goes back)."""
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


def check_sequence(reader: Reader, definition: ExperimentDef) -> None:
    """Loops apart, end-of-session last and outside loops, group forms only in group
    experiments, and one definition per question key."""
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


def check_callbacks(reader: Reader, definition: ExperimentDef) -> None:
    """Every callback named (group_flow, condition and stimulus scripts) must resolve."""
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


def check_policy(reader: Reader, definition: ExperimentDef, root: YMap) -> None:
    """Ask ``runner.policy.policy_errors`` about data_policy (imported here: the policy
    module reads definitions)."""
    if not definition.data_policy:
        return
    from runner import policy

    try:
        messages = policy.policy_errors(definition.data_policy)
    except Exception as exc:  # a broken checker must not let an unchecked policy through
        reader.error(definition.line("data_policy"), f"data_policy could not be checked: {type(exc).__name__}: {exc}")
        return
    for message in messages:
        path = message.split(":", 1)[0].split(" ", 1)[0]
        parts = path.split(".") if path.startswith("data_policy") else ["data_policy"]
        reader.error(find_line(root, parts, definition.line("data_policy")), message)
