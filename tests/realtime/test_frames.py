"""The hub's pre-serialised frames (realtime.frames.Frames, built by groups.store.wire_body): what one PUBLISH
carries decodes to exactly the texts a fresh snapshot gives each receiver."""

from __future__ import annotations

import json

import pytest

from groups.store import participant_view, wire_body
from realtime.frames import Frames
from realtime.frames import dumps as _dumps


def _snapshot(participants: list[dict]) -> dict:
    return {
        "type": "group.state", "version": 9, "participant_version": 7, "group_session": 3, "phase": "running",
        "step": 2, "server_ms": 1_700_000_000_000, "shared_params": {"colour": "#aabbcc", "ünï": ["\n", "\"q\""]},
        "exit_loop": False, "run_url": "/run/4/", "size": 3, "ready": 1, "active": 2, "all_responded": False,
        "timer": {"deadline_ms": 1700000005000, "timer_remaining_ms": None, "timed_out": False}, "lobby": None,
        "starts_at": None, "participants": participants, "context": {"note": "line\nbreak"}, "step_log": [],
    }  # fmt: skip


PARTICIPANTS = [
    {"id": "PABCDEF", "connected": True, "status": "answering", "form": "trial", "responded_step": None,
     "acked_version": 7, "behind": False},
    {"id": "PGHJKLM", "connected": False, "status": "responded", "form": "trial", "responded_step": 2,
     "acked_version": 5, "behind": True},
    {"id": "Pé\"\\x", "connected": True, "status": "kicked", "form": "", "responded_step": 0,
     "acked_version": 0, "behind": True},
]  # fmt: skip


def test_each_receiver_gets_what_its_fresh_view_serialises_to():
    snap = _snapshot(PARTICIPANTS)
    frames = Frames.decode(3, wire_body(snap))
    assert (frames.group_session, frames.version, frames.participant_version) == (3, 9, 7)
    assert frames.experimenter == _dumps(snap) and json.loads(frames.experimenter) == snap
    for p in PARTICIPANTS:
        text = frames.participant(p["id"])
        assert text == _dumps(participant_view(snap, p["id"]))  # byte for byte
        assert frames.knows(p["id"]) and frames.status_of(p["id"]) == p["status"]


def test_a_participant_the_snapshot_does_not_hold_is_shown_removed():
    frames = Frames.decode(3, wire_body(_snapshot(PARTICIPANTS[:1])))
    assert not frames.knows("PNOBODY") and frames.status_of("PNOBODY") == "kicked"
    assert json.loads(frames.participant("PNOBODY")) == participant_view(_snapshot([]), "PNOBODY")


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_the_wire_form_is_four_lines_whatever_the_text_holds(n):
    participants = [{**PARTICIPANTS[0], "id": f"P{i:06d}"} for i in range(n)]
    body = wire_body(_snapshot(participants))
    assert body.count("\n") == 3  # JSON escapes every newline inside strings
    frames = Frames.decode(3, body)
    assert all(frames.knows(p["id"]) for p in participants)


def test_a_steps_content_is_looked_up_once_per_snapshot_not_once_per_socket(monkeypatch, settings):
    """The fan-out pass of a step's first state (1000 sockets) asks ``realtime.live`` once:
    the setting and the content future are memoised on the snapshot's Frames."""
    import asyncio

    from realtime import live

    calls = []

    def prebuilt(group_session_id, step):
        calls.append((group_session_id, step))
        return '{"type":"group.content"}'

    monkeypatch.setattr(
        live,
        "group",
        lambda: type(
            "P", (), {"step_content": staticmethod(lambda *a: None), "prebuilt_content": staticmethod(prebuilt)}
        )(),  # fmt: skip
    )
    settings.GROUP_LIVE_PUSH_CONTENT = True

    async def fan_out():
        frames = Frames.decode(3, wire_body(_snapshot(PARTICIPANTS)))
        futures = {id(live.content_of(frames, 3, 2)) for _ in range(1000)}
        other = Frames.decode(3, wire_body(_snapshot(PARTICIPANTS)))
        settings.GROUP_LIVE_PUSH_CONTENT = False  # a later snapshot sees the setting anew
        assert live.content_of(other, 3, 2) is None
        return futures, live.content_of(frames, 3, 2)

    futures, again = asyncio.run(fan_out())
    assert len(futures) == 1 and calls == [(3, 2)]
    assert again.result() == '{"type":"group.content"}'
    live.forget_contents(3)
