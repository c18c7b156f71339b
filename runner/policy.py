"""The data policy: what may be kept, enforced when data arrive (SPEC section 7).

An experiment's ``data_policy`` is a mapping::

    {"default": "keep",                       # unknown jsPsych keys (keep | drop | hash)
     "subject": {"dob": "year_only", "email": "drop", "name_first": "hash"},
     "jspsych": {"rt": {"round_to": 10}, "ip_address": "drop", "birth_date": "age_in_years"}}

Transforms: ``keep``, ``drop``, ``hash`` (HMAC-SHA256 with ``PSEUDONYM_KEY``, hex),
``year_only`` (a date becomes its year), ``age_in_years`` (a date becomes whole years
at the time of storage), ``{"round_to": N}`` (numbers rounded to the nearest multiple of N).

Rules worth knowing:

- Subject fields not named in the policy are kept (they are encrypted at rest and are
  only stored when a form asks for them). ``default`` governs jsPsych keys only.
- The policy applies to *top-level* keys of a jsPsych trial. A nested value (a dict or
  list, e.g. survey ``response``) follows its top-level key's transform as a whole:
  ``keep`` and ``drop`` act on all of it, ``hash`` hashes its canonical JSON,
  ``round_to`` rounds every number inside it.
- A value a transform cannot apply to is not stored as it was: an unparseable date
  under ``year_only``/``age_in_years`` and a non-number under ``round_to`` become null.
- ``dob`` lives in an encrypted *date* field, so it cannot be hashed; ``year_only`` stores
  1 January of the birth year (only the year is meaningful) and ``age_in_years``
  drops ``dob`` and returns the age under the extra key ``"age"``, which belongs
  on ``Session.age``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

KEEP, DROP, HASH, YEAR_ONLY, AGE_IN_YEARS, ROUND_TO = "keep", "drop", "hash", "year_only", "age_in_years", "round_to"
NAMED_TRANSFORMS = (KEEP, DROP, HASH, YEAR_ONLY, AGE_IN_YEARS)
DEFAULT_TRANSFORMS = (KEEP, DROP, HASH)
DATE_TRANSFORMS = (KEEP, DROP, YEAR_ONLY, AGE_IN_YEARS)
POLICY_SECTIONS = ("default", "subject", "jspsych")

#: Personal Subject fields a policy may name, with how the consent summary calls them.
SUBJECT_FIELDS: dict[str, str] = {
    "name_first": "your first name",
    "name_last": "your last name",
    "email": "your email address",
    "dob": "your date of birth",
    "phone": "your phone number",
    "address": "your postal address",
    "prolific_pid": "your Prolific ID",
}
DATE_SUBJECT_FIELDS = {"dob"}


class InvalidPolicy(ValueError):
    """The experiment's data policy itself is malformed (nothing is stored under it)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("Invalid data policy: " + "; ".join(errors))


class PolicyViolation(Exception):
    """An attempt to store what the policy forbids. ``field`` names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Transform:
    name: str
    round_to: float | int | None = None


@dataclass(frozen=True)
class Policy:
    default: Transform = Transform(KEEP)
    subject: dict[str, Transform] = field(default_factory=dict)
    jspsych: dict[str, Transform] = field(default_factory=dict)

    def for_subject(self, name: str) -> Transform:
        return self.subject.get(name, Transform(KEEP))

    def for_jspsych(self, key: str) -> Transform:
        return self.jspsych.get(key, self.default)


# --------------------------------------------------------------------------- validation


def _transform_errors(where: str, spec: Any, *, allowed: Iterable[str], allow_round: bool) -> list[str]:
    allowed = tuple(allowed)
    if isinstance(spec, str):
        if spec in allowed:
            return []
        if spec in NAMED_TRANSFORMS:
            return [f"{where}: transform '{spec}' cannot be used here (allowed: {', '.join(allowed)})"]
        return [f"{where}: unknown transform '{spec}' (known: {', '.join(NAMED_TRANSFORMS)}, round_to: N)"]
    if isinstance(spec, Mapping):
        if set(spec) != {ROUND_TO}:
            return [f"{where}: a mapping transform must be exactly {{round_to: N}}, got keys {sorted(spec)}"]
        if not allow_round:
            return [f"{where}: round_to cannot be used here"]
        n = spec[ROUND_TO]
        if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) or n <= 0:
            return [f"{where}: round_to needs a positive number, got {n!r}"]
        return []
    return [f"{where}: a transform is a name or {{round_to: N}}, got {type(spec).__name__}"]


def policy_errors(policy: Any) -> list[str]:
    """Every problem with a data policy mapping, as readable strings ([] when valid)."""
    if policy in (None, {}):
        return []
    if not isinstance(policy, Mapping):
        return [f"data_policy must be a mapping, got {type(policy).__name__}"]
    errors = [
        f"data_policy: unknown section '{k}' (known: {', '.join(POLICY_SECTIONS)})"
        for k in policy
        if k not in POLICY_SECTIONS
    ]
    if "default" in policy:
        errors += _transform_errors(
            "data_policy.default", policy["default"], allowed=DEFAULT_TRANSFORMS, allow_round=False
        )
    subject = policy.get("subject") or {}
    if not isinstance(subject, Mapping):
        errors.append("data_policy.subject must be a mapping of subject field -> transform")
        subject = {}
    for name, spec in subject.items():
        where = f"data_policy.subject.{name}"
        if name not in SUBJECT_FIELDS:
            errors.append(f"{where}: unknown subject field (known: {', '.join(SUBJECT_FIELDS)})")
            continue
        # dob sits in an encrypted date field: a hex hash cannot be stored there.
        allowed = DATE_TRANSFORMS if name in DATE_SUBJECT_FIELDS else DEFAULT_TRANSFORMS
        errors += _transform_errors(where, spec, allowed=allowed, allow_round=False)
    jspsych = policy.get("jspsych") or {}
    if not isinstance(jspsych, Mapping):
        errors.append("data_policy.jspsych must be a mapping of jsPsych data key -> transform")
        jspsych = {}
    for key, spec in jspsych.items():
        if not isinstance(key, str) or not key:
            errors.append(f"data_policy.jspsych: keys must be non-empty strings, got {key!r}")
            continue
        errors += _transform_errors(f"data_policy.jspsych.{key}", spec, allowed=NAMED_TRANSFORMS, allow_round=True)
    return errors


def _to_transform(spec: Any) -> Transform:
    if isinstance(spec, Mapping):
        return Transform(ROUND_TO, spec[ROUND_TO])
    return Transform(spec)


def parse_policy(policy: Any) -> Policy:
    """A validated :class:`Policy`; raises :class:`InvalidPolicy` listing every error."""
    errors = policy_errors(policy)
    if errors:
        raise InvalidPolicy(errors)
    policy = policy or {}
    return Policy(
        default=_to_transform(policy.get("default", KEEP)),
        subject={k: _to_transform(v) for k, v in (policy.get("subject") or {}).items()},
        jspsych={k: _to_transform(v) for k, v in (policy.get("jspsych") or {}).items()},
    )


def policy_of(experiment: Any) -> Policy:
    """The parsed policy of an experiment (or of anything with ``data_policy``)."""
    return parse_policy(getattr(experiment, "data_policy", None) or {})


# --------------------------------------------------------------------------- transforms


def hash_value(value: Any) -> str | None:
    """HMAC-SHA256 (key ``PSEUDONYM_KEY``) of a value, hex. Strings are hashed as
    their UTF-8 text, anything else as canonical JSON. ``None`` stays ``None``."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(str(settings.PSEUDONYM_KEY).encode(), b"policy:" + text.encode(), hashlib.sha256).hexdigest()


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return None


def age_on(born: date, today: date) -> int:
    """Whole years between ``born`` and ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _round(value: Any, n: float | int) -> Any:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        rounded = round(value / n) * n
        if isinstance(n, int) or float(n).is_integer():
            return int(rounded)
        return round(rounded, 10)
    if isinstance(value, str):
        try:
            return _round(float(value), n)
        except ValueError:
            return None
    if isinstance(value, list):
        return [_round(v, n) for v in value]
    if isinstance(value, Mapping):
        return {k: _round(v, n) for k, v in value.items()}
    return None


def apply_transform(transform: Transform, value: Any, *, today: date | None = None) -> Any:
    """The stored form of ``value`` under ``transform`` (not for ``drop``: the caller omits the key)."""
    name = transform.name
    if name == KEEP:
        return value
    if name == HASH:
        return hash_value(value)
    if name == ROUND_TO:
        return _round(value, transform.round_to)
    if name in (YEAR_ONLY, AGE_IN_YEARS):
        born = _as_date(value)
        if born is None:
            return None
        if name == YEAR_ONLY:
            return born.year
        return age_on(born, today or timezone.now().date())
    raise ValueError(f"transform {name!r} has no stored form")


# --------------------------------------------------------------------------- enforcement


def sanitize_subject_fields(experiment: Any, fields: Mapping[str, Any], *, today: date | None = None) -> dict:
    """Apply the experiment's policy to personal Subject fields before they are saved.

    Returns a new dict: dropped fields are absent, hashed ones are hex HMACs, ``dob``
    under ``year_only`` is 1 January of the birth year, and under ``age_in_years`` it is
    replaced by ``"age"`` (whole years, for ``Session.age``).
    Raises :class:`PolicyViolation` for a name that is not a personal Subject field and
    :class:`InvalidPolicy` when the experiment's policy is malformed.
    """
    policy = policy_of(experiment)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in SUBJECT_FIELDS:
            raise PolicyViolation(name, f"'{name}' is not a personal subject field; it cannot be stored")
        transform = policy.for_subject(name)
        if transform.name == DROP:
            continue
        if name in DATE_SUBJECT_FIELDS and transform.name == YEAR_ONLY:
            born = _as_date(value)
            out[name] = date(born.year, 1, 1) if born else None
        elif name in DATE_SUBJECT_FIELDS and transform.name == AGE_IN_YEARS:
            out["age"] = apply_transform(transform, value, today=today)
        else:
            out[name] = apply_transform(transform, value, today=today)
    return out


def sanitize_trial(policy: Policy, trial: Mapping[str, Any], *, today: date | None = None) -> dict:
    """One jsPsych trial's data under a parsed policy (top-level keys only)."""
    out: dict[str, Any] = {}
    for key, value in trial.items():
        transform = policy.for_jspsych(key)
        if transform.name != DROP:
            out[key] = apply_transform(transform, value, today=today)
    return out


def sanitize_jspsych(experiment: Any, trials: list[dict], *, today: date | None = None) -> list[dict]:
    """Apply the experiment's policy to jsPsych trial data before it is saved.

    Keys named in ``policy["jspsych"]`` get their transform; other keys follow
    ``policy["default"]`` (keep unless set). Returns new dicts; the input is untouched.
    Raises :class:`InvalidPolicy` when the policy is malformed and :class:`PolicyViolation`
    when a trial is not a mapping.
    """
    policy = policy_of(experiment)
    cleaned = []
    for index, trial in enumerate(trials):
        if not isinstance(trial, Mapping):
            raise PolicyViolation(f"trial[{index}]", "jsPsych trial data must be an object")
        cleaned.append(sanitize_trial(policy, trial, today=today))
    return cleaned


def store_forbidden_check(experiment: Any, kind: str, field: str) -> Transform:
    """Refuse an explicit attempt to store ``field`` (of ``kind`` "subject" or "jspsych").

    Callback-facing store APIs call this first: it raises :class:`PolicyViolation`
    naming the field when the policy drops it (or when ``field`` is not a subject
    field), and otherwise returns the transform the value will go through.
    """
    policy = policy_of(experiment)
    if kind == "subject":
        if field not in SUBJECT_FIELDS:
            raise PolicyViolation(field, f"'{field}' is not a personal subject field; it cannot be stored")
        transform = policy.for_subject(field)
    elif kind == "jspsych":
        transform = policy.for_jspsych(field)
    else:
        raise ValueError(f"kind must be 'subject' or 'jspsych', got {kind!r}")
    if transform.name == DROP:
        slug = getattr(experiment, "slug", "this experiment")
        raise PolicyViolation(field, f"the data policy of {slug} forbids storing {kind} field '{field}'")
    return transform
