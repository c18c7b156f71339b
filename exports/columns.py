"""The column registry: every exportable column, described once.

Each :class:`Column` declares its name, description, type, units or levels, whether it
identifies a person, and whether it is exported by default. Identifying columns are
never on by default; choosing one marks the file ``identifiable`` and writes an
:class:`~exports.models.ExportAudit` row.

Families (``value.*``, ``shared.*``, ``jspsych.*``) stand for a set of columns known only
from the data (nested JSON flattened to dotted names); :func:`describe` gives each concrete
column of a family its dictionary entry. Column order in files is registry order, with a
family's columns sorted by name in its place.
"""

from __future__ import annotations

from dataclasses import dataclass

SESSION, RESPONSE = "session", "response"


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    type: str  # integer | number | string | boolean | datetime | json
    level: str  # session | response
    units: str = ""
    levels: tuple[str, ...] = ()
    identifying: bool = False
    default_on: bool = True

    @property
    def is_family(self) -> bool:
        return self.name.endswith(".*")

    @property
    def prefix(self) -> str:
        return self.name[:-1] if self.is_family else self.name


def _c(name, description, type_, level, **kw) -> Column:
    return Column(name, description, type_, level, **kw)


S, R = SESSION, RESPONSE
COLUMNS: tuple[Column, ...] = (
    _c(
        "participant",
        "Study-specific pseudonym of the participant (HMAC of a key kept outside the database).",
        "string",
        S,
    ),
    _c("session", "Session id: one participant's run through the experiment.", "integer", S),
    _c("experiment", "Slug of the experiment.", "string", S),
    _c("session_start", "When the session started (UTC, ISO 8601).", "datetime", S),
    _c("session_end", "When the session finished (UTC, ISO 8601); empty if it did not finish.", "datetime", S),
    _c("finished", "Whether the session reached its end.", "boolean", S, levels=("true", "false")),
    _c("preview", "Whether the session was an experimenter's preview.", "boolean", S, levels=("true", "false")),
    _c(
        "excluded",
        "Whether the session or its participant was excluded from analysis.",
        "boolean",
        S,
        levels=("true", "false"),
    ),
    _c("exclusion_reason", "Why the session or participant was excluded.", "string", S),
    _c("age", "Participant's age in whole years, where the experiment stored it.", "integer", S, units="years"),
    _c("timezone", "The browser's IANA time zone.", "string", S),
    _c("group_session", "Id of the live group session the participant took part in, if any.", "integer", S),
    _c("prolific_study_id", "Prolific STUDY_ID the session came from.", "string", S, default_on=False),
    _c("clock_offset_ms", "Estimated browser clock minus server clock.", "number", S, units="ms", default_on=False),
    _c("user_agent", "The browser's user-agent string.", "string", S, identifying=True, default_on=False),
    _c("subject_id", "Internal subject id (the same across studies).", "string", S, identifying=True, default_on=False),
    _c("name_first", "Participant's first name (decrypted).", "string", S, identifying=True, default_on=False),
    _c("name_last", "Participant's last name (decrypted).", "string", S, identifying=True, default_on=False),
    _c("email", "Participant's email address (decrypted).", "string", S, identifying=True, default_on=False),
    _c(
        "dob",
        "Participant's date of birth as stored under the data policy (decrypted).",
        "string",
        S,
        identifying=True,
        default_on=False,
    ),
    _c("phone", "Participant's phone number (decrypted).", "string", S, identifying=True, default_on=False),
    _c("address", "Participant's postal address (decrypted).", "string", S, identifying=True, default_on=False),
    _c("prolific_pid", "Participant's Prolific id (decrypted).", "string", S, identifying=True, default_on=False),
    _c(
        "prolific_session_id", "Prolific SESSION_ID of the submission.", "string", S, identifying=True, default_on=False
    ),
    _c("sona_code", "SONA survey code used to grant credit.", "string", S, identifying=True, default_on=False),
    _c("form_order", "Position of the form in the experiment (1-based).", "integer", R),
    _c("form", "Name of the form.", "string", R),
    _c("visit", "Loop iteration of the form (1 for forms outside loops).", "integer", R),
    _c("item", "What was answered: a question key, or jspsych:<trial index> for a jsPsych trial.", "string", R),
    _c("question", "Key of the question answered (empty for jsPsych trials).", "string", R),
    _c("value", "The answer; several choices or structured answers as JSON text.", "json", R),
    _c("value.*", "Part of a structured answer, flattened to a dotted column.", "json", R),
    _c("trial_index", "jsPsych trial index within the form's timeline.", "integer", R),
    _c("stimulus", "Name of the stimulus shown with the form.", "string", R),
    _c("served_at", "When the form was served (UTC, ISO 8601).", "datetime", R),
    _c("submitted_at", "When the answer arrived at the server (UTC, ISO 8601).", "datetime", R),
    _c("client_time_ms", "Browser clock at submit, ms since the epoch.", "integer", R, units="ms", default_on=False),
    _c("step", "Lockstep index of the group session when answered (group experiments).", "integer", R),
    _c(
        "onset_ms",
        "Live page: when the step appeared on this participant's screen, server clock, ms since the Unix epoch "
        "(the planned onset is the group's starts_at; see onset_late_ms).",
        "integer",
        R,
        units="ms",
    ),
    _c(
        "onset_late_ms",
        "Live page: how late the step appeared because its content was not ready at the planned onset (0: on time).",
        "integer",
        R,
        units="ms",
    ),
    _c("shared.*", "Shared trial parameter the experimenter's step gave the whole group.", "json", R),
    _c("jspsych.*", "jsPsych trial data as recorded in the browser, flattened to dotted columns.", "json", R),
)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

#: Better words and units for well-known jsPsych data keys.
JSPSYCH_KEYS: dict[str, tuple[str, str, str]] = {
    "trial_type": ("jsPsych plugin that ran the trial.", "string", ""),
    "trial_index": ("Index of the trial in the jsPsych timeline.", "integer", ""),
    "time_elapsed": ("Time since the jsPsych timeline started.", "number", "ms"),
    "internal_node_id": ("jsPsych's internal position of the trial in the timeline.", "string", ""),
    "rt": ("Response time from stimulus onset.", "number", "ms"),
    "stimulus": ("Stimulus shown in the trial (as given to the plugin).", "string", ""),
    "response": ("The participant's response as recorded by the plugin.", "json", ""),
    "correct": ("Whether the response was correct.", "boolean", ""),
}


class ColumnError(ValueError):
    """An unknown column name was asked for."""


def default_columns() -> list[str]:
    return [c.name for c in COLUMNS if c.default_on]


def identifying_names() -> list[str]:
    return [c.name for c in COLUMNS if c.identifying]


def resolve(names: list[str] | None, *, add_identifying: list[str] | None = None) -> list[str]:
    """Registry-ordered column names: ``names`` (or the defaults) plus ``add_identifying``.

    Raises :class:`ColumnError` naming every unknown column, and when a name given in
    ``add_identifying`` is not an identifying column.
    """
    chosen = list(names) if names else default_columns()
    extra = list(add_identifying or [])
    unknown = [n for n in chosen + extra if n not in BY_NAME]
    if unknown:
        raise ColumnError(f"unknown column(s): {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
    not_identifying = [n for n in extra if not BY_NAME[n].identifying]
    if not_identifying:
        raise ColumnError(
            f"not identifying column(s): {', '.join(not_identifying)} (identifying: {', '.join(identifying_names())})"
        )
    wanted = set(chosen) | set(extra)
    return [c.name for c in COLUMNS if c.name in wanted]


def identifying_in(names: list[str]) -> list[str]:
    return [n for n in names if BY_NAME[n].identifying]


@dataclass(frozen=True)
class Entry:
    """One row of a data dictionary."""

    column: str
    description: str
    type: str
    units: str = ""
    levels: tuple[str, ...] = ()
    identifying: bool = False

    def as_row(self) -> list[str]:
        from .records import guard_formula  # question texts and choices come from definitions

        return [
            self.column,
            guard_formula(self.description),
            self.type,
            guard_formula(self.units),
            guard_formula("|".join(self.levels)),
            "true" if self.identifying else "false",
        ]


DICTIONARY_HEADER = ["column", "description", "type", "units", "levels", "identifying"]


def describe(name: str) -> Entry:
    """The dictionary entry of a concrete column (a registry column or a family member).

    Raises :class:`ColumnError` for a name that belongs to no registry column or family.
    """
    col = BY_NAME.get(name)
    if col is not None and not col.is_family:
        return Entry(name, col.description, col.type, col.units, col.levels, col.identifying)
    for family in (c for c in COLUMNS if c.is_family):
        if name.startswith(family.prefix):
            key = name[len(family.prefix) :]
            return _family_entry(family, name, key)
    raise ColumnError(f"column {name!r} is not in the registry")


def _family_entry(family: Column, name: str, key: str) -> Entry:
    top = key.split(".", 1)[0]
    if family.name == "jspsych.*":
        if key in JSPSYCH_KEYS:
            text, type_, units = JSPSYCH_KEYS[key]
            return Entry(name, f"jsPsych data '{key}': {text}", type_, units)
        return Entry(name, f"jsPsych data key '{key}', as recorded by the trial (nested keys are dotted).", "json")
    if family.name == "shared.*":
        return Entry(name, f"Shared trial parameter '{key}' given to the whole group at this step.", "json")
    return Entry(name, f"Part '{key}' of a structured answer (under '{top}').", "json")


#: Columns of the group step-log file (group experiments).
STEP_COLUMNS: tuple[Column, ...] = (
    _c("group_session", "Id of the live group session.", "integer", "step"),
    _c("step", "Lockstep index after the action (starts at 0).", "integer", "step"),
    _c(
        "action",
        "What the experimenter (or the server) did: start, advance, pause, resume, exit_loop, end, ...",
        "string",
        "step",
    ),
    _c("at", "When it happened (UTC, ISO 8601).", "datetime", "step"),
    _c("at_ms", "When it happened, server time in ms since the Unix epoch.", "integer", "step", units="ms"),
    _c("shared.*", "Shared trial parameter given to the whole group at this step.", "json", "step"),
)
#: Flow-control columns of the step log (issue 20), present when the covered group
#: sessions have flow-control events (timers, move on, dropouts, lobby).
FLOW_STEP_COLUMNS: tuple[Column, ...] = (
    _c("participant", "Group pseudonym of the participant the action is about (its export pseudonym starts so).",
       "string", "step"),
    _c("by", "Who acted: experimenter, auto (the server's timer or auto-advance), or empty (the server otherwise).",
       "string", "step"),
    _c("timed_out", "True when the step's timer ran out on this participant's open answer (on_timeout: submit).",
       "boolean", "step"),
    _c("skipped", "True when this participant's step was closed without an answer (on_timeout: skip, or the "
       "console's move on).", "boolean", "step"),
    _c("dropped_at", "When this participant was declared dropped out (UTC, ISO 8601; offline past "
       "dropout.after_seconds).", "datetime", "step"),
    _c("played_by_bot", "True when a bot played on for this dropped-out participant (dropout policy bot).",
       "boolean", "step"),
)  # fmt: skip
FLOW_ACTIONS = frozenset({"timer_started", "timer_expired", "timed_out", "skipped", "timer_extended",
                          "timer_stopped", "moved_on", "sent_back", "resent", "dropped_out", "bot_took_over",
                          "returned", "replaced", "released", "standby"})  # fmt: skip
STEP_BY_NAME = {c.name: c for c in STEP_COLUMNS + FLOW_STEP_COLUMNS}


def describe_step(name: str) -> Entry:
    """Dictionary entry of a step-log column."""
    col = STEP_BY_NAME.get(name)
    if col is not None:
        return Entry(name, col.description, col.type, col.units)
    if name.startswith("shared."):
        return Entry(name, f"Shared trial parameter '{name[7:]}' given to the whole group at this step.", "json")
    raise ColumnError(f"column {name!r} is not a step-log column")
