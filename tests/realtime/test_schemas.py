"""The message schemas, and the JS mirror (static/js/protocol.js) naming the same types and close codes."""

from __future__ import annotations

import json
import re

import pytest
from django.conf import settings

from realtime import consumers, schemas


@pytest.mark.parametrize(
    "message",
    [
        {"type": "start"}, {"type": "advance", "step": 0}, {"type": "pause"}, {"type": "resume"},
        {"type": "exit_loop"}, {"type": "end"}, {"type": "abort"}, {"type": "set_context", "patch": {"a": [1]}},
        {"type": "kick", "participant": "PABCDEF"}, {"type": "ready", "step": 2}, {"type": "ack", "version": 7},
        {"type": "ping", "t": 1.5},
        {"type": "onset", "step": 1, "at": 1.5, "late_ms": 0.0, "ready_at": 1.0, "rtt_ms": 2.0, "frame": True},
    ],
)  # fmt: skip
def test_every_client_message_parses(message):
    parsed = schemas.parse_client_message(json.dumps(message))
    assert parsed.model_dump() == message


@pytest.mark.parametrize(
    "frame, code",
    [
        ("{", "bad_json"), ('"text"', "bad_json"), ("{}", "unknown_type"), ('{"type": 3}', "unknown_type"),
        ('{"type": "advance"}', "invalid_message"), ('{"type": "advance", "step": -1}', "invalid_message"),
        ('{"type": "advance", "step": true}', "invalid_message"),
        ('{"type": "kick", "participant": ""}', "invalid_message"),
        ('{"type": "set_context", "patch": [1]}', "invalid_message"),
        ('{"type": "pause", "now": 1}', "invalid_message"),
        ('{"type": "onset", "step": 0, "at": 1.5, "late_ms": 0, "frame": "yes"}', "invalid_message"),
        ('{"type": "onset", "step": 0, "at": 1.5, "late_ms": 0, "frame": 1}', "invalid_message"),
    ],
)  # fmt: skip
def test_bad_frames_have_machine_codes(frame, code):
    with pytest.raises(schemas.ProtocolError) as info:
        schemas.parse_client_message(frame)
    assert info.value.code == code


def test_sides_are_separate():
    with pytest.raises(schemas.ProtocolError) as info:
        schemas.parse_client_message('{"type": "start"}', allowed=schemas.PARTICIPANT_TYPES)
    assert info.value.code == "not_allowed"


def _js_list(source: str, name: str) -> set[str]:
    match = re.search(rf"{name}: \[([^\]]*)\]", source)
    return set(re.findall(r'"([a-z_.]+)"', match.group(1)))


def test_js_mirror_matches():
    source = (settings.BASE_DIR / "static/js/protocol.js").read_text()
    assert _js_list(source, "experimenter") == schemas.EXPERIMENTER_TYPES
    assert _js_list(source, "participant") == schemas.PARTICIPANT_TYPES
    assert _js_list(source, "server") == {"group.state", "group.content", "error", "pong"}
    js_codes = {int(c) for c in re.findall(r"\b(4\d{3})\b", source.split("var FINAL")[0])}
    assert js_codes == {
        *consumers.CLOSE_CODES.values(),
        consumers.CLOSE_TIMEOUT,
        consumers.CLOSE_TOO_LARGE,
        consumers.CLOSE_INTERNAL,
    }
