"""The data policy in plain language: the sentences the consent form shows about what
is stored (``runner.handlers.builtin.ConsentHandler``). The rules themselves are in
``runner.policy``."""

from __future__ import annotations

from typing import Any

from runner.policy import (
    AGE_IN_YEARS,
    DROP,
    HASH,
    ROUND_TO,
    SUBJECT_FIELDS,
    YEAR_ONLY,
    Transform,
    parse_policy,
)

#: How the consent summary names well-known jsPsych keys, and their units.
JSPSYCH_LABELS: dict[str, str] = {
    "rt": "response times",
    "time_elapsed": "the time elapsed in the task",
    "ip_address": "your IP address",
    "birth_date": "your birth date",
    "dob": "your date of birth",
    "response": "your responses",
    "user_agent": "your browser's identification",
}
JSPSYCH_UNITS = {"rt": "ms", "time_elapsed": "ms"}


def _label(kind: str, key: str) -> str:
    if kind == "subject":
        return SUBJECT_FIELDS[key]
    return JSPSYCH_LABELS.get(key, f'the task value "{key}"')


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _number(n: float | int) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


PLURAL_LABELS = {"response times", "your responses"}


def _verb(label: str) -> str:
    return "are" if label in PLURAL_LABELS else "is"


def _sentence(kind: str, key: str, t: Transform) -> str | None:
    label = _label(kind, key)
    is_birth = key in ("dob", "birth_date")
    if t.name == DROP:
        return f"{_cap(label)} {_verb(label)} not stored."
    if t.name == HASH:
        return f"We store only a scrambled code made from {label}, not {label} itself."
    if t.name == YEAR_ONLY:
        return (
            "We store the year of your birth, not the full date."
            if is_birth
            else f"We store only the year of {label}, not the full date."
        )
    if t.name == AGE_IN_YEARS:
        return (
            "We store your age in whole years, not your date of birth."
            if is_birth
            else f"We store only the number of whole years since {label}, not the date."
        )
    if t.name == ROUND_TO:
        unit = JSPSYCH_UNITS.get(key)
        amount = f"{_number(t.round_to)} {unit}" if unit else f"the nearest {_number(t.round_to)}"
        return f"{_cap(label)} {_verb(label)} rounded to {amount}."
    if kind == "subject":
        return f"If you give us {label}, we store it encrypted."
    return None


def plain_language_summary(policy: Any) -> list[str]:
    """Sentences for the consent form describing what the policy stores.

    Subject fields first (in the policy's order), then jsPsych keys, then what
    happens to other task data. Raises :class:`InvalidPolicy` for a malformed policy.
    """
    parsed = parse_policy(policy)
    sentences = [s for k, t in parsed.subject.items() if (s := _sentence("subject", k, t))]
    sentences += [s for k, t in parsed.jspsych.items() if (s := _sentence("jspsych", k, t))]
    default = parsed.default.name
    if default == DROP:
        sentences.append("Other data recorded by the tasks are not stored unless listed here.")
    elif default == HASH:
        sentences.append("Other data recorded by the tasks are stored only as scrambled codes.")
    else:
        sentences.append(
            "Other data recorded by the tasks (such as your answers and which keys you pressed) are stored as recorded."
        )
    sentences.append(
        "Personal details you enter are stored encrypted; your answers are analysed under a "
        "random code instead of your name."
    )
    return sentences
