"""Flow control in a definition (issue 20): a ``group_trial`` form's timer and
auto-advance, the experiment's dropout policy and lobby.

Each reader checks one part of the located tree and returns its canonical dict
(defaults left out, so a file without flow control stores ``{}`` and dumps back
as it was written). The runtime reads them with ``groups.flow_settings``.
"""

from __future__ import annotations

import math
import re

from .fields import Reader
from .nodes import YMap, YNode, YScalar

FORM_FLOW_KEYS = ("timeout_seconds", "on_timeout", "auto_advance", "auto_advance_delay_seconds")
DROPOUT_KEYS = ("after_seconds", "policy")
LOBBY_KEYS = ("min_size", "max_size", "wait_seconds", "release_completion_code")

ON_TIMEOUT = ("submit", "skip")
AUTO_ADVANCE = ("experimenter", "all_responded", "timeout")
DROPOUT_POLICIES = ("continue", "end_group", "bot")
DEFAULT_ON_TIMEOUT = "submit"
DEFAULT_AUTO_ADVANCE = "experimenter"
DEFAULT_DROPOUT_POLICY = "continue"

MAX_TIMEOUT_SECONDS = 24 * 3600  # a step timer, a dropout wait or a lobby wait longer than a day is a typo
MAX_DELAY_SECONDS = 3600
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def seconds(reader: Reader, node: YNode | None, where: str, *, minimum: float, maximum: float) -> float | int | None:
    """A finite number of seconds in [minimum, maximum]; None when absent or wrong."""
    if not reader.present(node):
        return None
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        reader.error(node.line, f"{where} must be a number of seconds")
        return None
    if not minimum <= value <= maximum:
        reader.error(node.line, f"{where} must be at least {minimum:g} and at most {maximum:g} seconds")
        return None
    return value


def _choice(reader: Reader, node: YNode | None, where: str, allowed: tuple[str, ...]) -> str:
    text = reader.string(node, where, getattr(node, "line", 1))
    if text and text not in allowed:
        reader.error(node.line, f"{where} must be one of {', '.join(allowed)}, not '{text}'")
        return ""
    return text


def read_form_flow(reader: Reader, form_map: YMap, where: str, handler: str) -> dict:
    """The flow-control keys of a form; only ``group_trial`` forms may have them."""
    get = form_map.get
    given = [key for key in FORM_FLOW_KEYS if reader.present(get(key))]
    if not given:
        return {}
    if handler != "group_trial":
        for key in given:
            reader.error(form_map.line_of(key), f"{where}: {key} is only for group_trial forms")
        return {}
    flow: dict = {}
    timeout = seconds(
        reader, get("timeout_seconds"), f"{where}: timeout_seconds", minimum=1, maximum=MAX_TIMEOUT_SECONDS
    )
    if timeout is not None:
        flow["timeout_seconds"] = timeout
    on_timeout = _choice(reader, get("on_timeout"), f"{where}: on_timeout", ON_TIMEOUT)
    auto = _choice(reader, get("auto_advance"), f"{where}: auto_advance", AUTO_ADVANCE)
    delay = seconds(
        reader,
        get("auto_advance_delay_seconds"),
        f"{where}: auto_advance_delay_seconds",
        minimum=0,
        maximum=MAX_DELAY_SECONDS,
    )
    _check_form_flow(reader, form_map, where, auto)
    if on_timeout and on_timeout != DEFAULT_ON_TIMEOUT:
        flow["on_timeout"] = on_timeout
    if auto and auto != DEFAULT_AUTO_ADVANCE:
        flow["auto_advance"] = auto
    if delay:
        flow["auto_advance_delay_seconds"] = delay
    return flow


def _check_form_flow(reader: Reader, form_map: YMap, where: str, auto: str) -> None:
    """The keys that only make sense together."""
    get = form_map.get
    has_timer = reader.present(get("timeout_seconds"))
    if reader.present(get("on_timeout")) and not has_timer:
        reader.error(form_map.line_of("on_timeout"), f"{where}: on_timeout needs timeout_seconds")
    if auto == "timeout" and not has_timer:
        reader.error(form_map.line_of("auto_advance"), f"{where}: auto_advance: timeout needs timeout_seconds")
    manual = not reader.present(get("auto_advance")) or auto == DEFAULT_AUTO_ADVANCE
    if reader.present(get("auto_advance_delay_seconds")) and manual:
        reader.error(
            form_map.line_of("auto_advance_delay_seconds"),
            f"{where}: auto_advance_delay_seconds needs auto_advance: all_responded or timeout",
        )


def read_dropout(reader: Reader, node: YNode | None) -> dict:
    """``dropout: {after_seconds, policy}``; ``after_seconds`` is required."""
    dmap = reader.mapping(node, "dropout")
    if dmap is None:
        return {}
    reader.unknown_keys(dmap, DROPOUT_KEYS, "dropout")
    after = seconds(reader, dmap.get("after_seconds"), "dropout: after_seconds", minimum=1, maximum=MAX_TIMEOUT_SECONDS)
    if not reader.present(dmap.get("after_seconds")):
        reader.error(dmap.line, "dropout needs after_seconds (how long offline counts as dropped out)")
    policy = _choice(reader, dmap.get("policy"), "dropout: policy", DROPOUT_POLICIES)
    out: dict = {}
    if after is not None:
        out["after_seconds"] = after
    if policy and policy != DEFAULT_DROPOUT_POLICY:
        out["policy"] = policy
    return out


def read_lobby(reader: Reader, node: YNode | None) -> dict:
    """``lobby: {min_size, max_size, wait_seconds, release_completion_code}``."""
    lmap = reader.mapping(node, "lobby")
    if lmap is None:
        return {}
    reader.unknown_keys(lmap, LOBBY_KEYS, "lobby")
    get = lmap.get
    out: dict = {}
    min_size = reader.integer(get("min_size"), "lobby: min_size", minimum=1)
    max_size = reader.integer(get("max_size"), "lobby: max_size", minimum=1)
    wait = seconds(reader, get("wait_seconds"), "lobby: wait_seconds", minimum=1, maximum=MAX_TIMEOUT_SECONDS)
    for key in ("min_size", "wait_seconds"):
        if not reader.present(get(key)):
            reader.error(lmap.line, f"lobby needs {key}")
    if min_size is not None and max_size is not None and max_size < min_size:
        reader.error(lmap.line_of("max_size"), f"lobby: max_size ({max_size}) must be at least min_size ({min_size})")
    code = reader.string(get("release_completion_code"), "lobby: release_completion_code", lmap.line)
    if code and not _CODE.match(code):
        reader.error(
            lmap.line_of("release_completion_code"),
            "lobby: release_completion_code must be 1-64 letters, digits, hyphens or underscores",
        )
    for key, value in (("min_size", min_size), ("max_size", max_size), ("wait_seconds", wait)):
        if value is not None:
            out[key] = value
    if code and _CODE.match(code):
        out["release_completion_code"] = code
    return out


def check_experiment_flow(reader: Reader, root: YMap, is_group: bool) -> tuple[dict, dict]:
    """(dropout, lobby) of the experiment; both are only for group experiments."""
    dropout, lobby = read_dropout(reader, root.get("dropout")), read_lobby(reader, root.get("lobby"))
    if not is_group:
        for key in ("dropout", "lobby"):
            if reader.present(root.get(key)):
                reader.error(root.line_of(key), f"{key} is only for group experiments (set is_group: true)")
    return dropout, lobby


def flow_dict(flow: dict, keys: tuple[str, ...]) -> dict:
    """A stored flow mapping in canonical key order."""
    return {key: flow[key] for key in keys if key in flow}
