"""Group sockets through the real router (realtime.asgi.websocket_application),
always disconnecting."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.conf import settings

from groups import answers, selectors, services

from .conftest import communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def refused_with(comm, close_code, error_code=None):
    connected, _ = await comm.connect()
    assert connected  # accepted, then closed with a code the browser sees
    if error_code:
        message = await comm.receive_json_from()
        assert message == {**message, "type": "error", "code": error_code}
    assert await comm.receive_output(timeout=2) == {"type": "websocket.close", "code": close_code}
    await comm.disconnect()


async def next_of(comm, kind, timeout=3):
    while True:
        message = await comm.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


async def state_where(comm, predicate, timeout=3):
    while True:
        message = await next_of(comm, "group.state", timeout)
        if predicate(message):
            return message


async def test_experimenter_gets_snapshot_equal_to_fresh_one(world, call):
    comm = world.experimenter()
    connected, _ = await comm.connect()
    assert connected
    state = await comm.receive_json_from()
    assert state == await call(selectors.snapshot, group_session_id=world.gs.pk)
    assert state["phase"] == "waiting" and {p["id"] for p in state["participants"]} == set(world.pseudonyms)
    await comm.disconnect()


async def test_experimenter_refused_without_login(world):
    await refused_with(communicator(f"/ws/group/{world.gs.pk}/experimenter/"), 4001, "unauthenticated")


async def test_experimenter_refused_for_other_group_session(world):
    await refused_with(world.experimenter(gs=world.other_gs), 4003, "forbidden")
    await refused_with(world.experimenter(user=world.outsider), 4003, "forbidden")


async def test_unknown_group_session_and_unknown_path(world):
    await refused_with(communicator("/ws/group/999999/experimenter/", world.staff_cookies()), 4004, "not_found")
    await refused_with(communicator("/ws/group/999999/participant/", world.run_cookies(0)), 4004, "not_found")
    await refused_with(communicator("/ws/nowhere/"), 4004, "not_found")


async def test_participant_refused_without_cookie_or_for_wrong_group(world):
    await refused_with(communicator(f"/ws/group/{world.gs.pk}/participant/"), 4001, "unauthenticated")
    await refused_with(
        communicator(f"/ws/group/{world.gs.pk}/participant/", {world.cookie_name: "forged"}), 4001, "unauthenticated"
    )
    await refused_with(world.participant(0, gs=world.other_gs), 4003, "forbidden")


async def test_foreign_origin_is_refused(world):
    comm = communicator(f"/ws/group/{world.gs.pk}/experimenter/", world.staff_cookies(), origin=b"http://evil.example")
    connected, _ = await comm.connect()
    assert not connected
    await comm.disconnect()


async def test_malformed_and_unknown_messages_change_nothing(world, call):
    comm = world.experimenter()
    await comm.connect()
    before = await comm.receive_json_from()
    for frame, code in [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"type": "launch_rockets"}), "unknown_type"),
        (json.dumps({"step": 1}), "unknown_type"),
        (json.dumps({"type": "advance", "step": "zero"}), "invalid_message"),
        (json.dumps({"type": "start", "extra": 1}), "invalid_message"),
        (json.dumps({"type": "ack", "version": 1}), "not_allowed"),
    ]:
        await comm.send_to(text_data=frame)
        message = await comm.receive_json_from()
        assert (message["type"], message["code"]) == ("error", code), frame
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await comm.receive_json_from())["code"] == "bad_json"
    assert await call(selectors.snapshot, group_session_id=world.gs.pk) == before
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


async def test_participant_cannot_send_experimenter_commands(world, call):
    comm = world.participant(0)
    await comm.connect()
    await next_of(comm, "group.state")
    await comm.send_json_to({"type": "start"})
    assert (await next_of(comm, "error"))["code"] == "not_allowed"
    assert (await call(selectors.snapshot, group_session_id=world.gs.pk))["phase"] == "waiting"
    await comm.disconnect()


async def test_oversized_frame_closes_4009(world):
    comm = world.experimenter()
    await comm.connect()
    await comm.receive_json_from()
    huge = {"type": "set_context", "patch": {"x": "a" * settings.WS_MAX_MESSAGE_BYTES}}
    await comm.send_to(text_data=json.dumps(huge))
    assert await comm.receive_output(timeout=2) == {"type": "websocket.close", "code": 4009}
    await comm.disconnect()


async def test_ping_pong(world):
    comm = world.participant(0)
    await comm.connect()
    await comm.send_json_to({"type": "ping", "t": 123.5})
    pong = await next_of(comm, "pong")
    assert pong["t"] == 123.5 and pong["server_ms"] > 1_600_000_000_000
    await comm.disconnect()


async def test_lockstep_over_sockets(world, call):
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    ann = world.participant(0)
    await ann.connect()
    view = await next_of(ann, "group.state")
    assert view["phase"] == "waiting" and view["me"]["id"] == world.pseudonyms[0]
    assert "participants" not in view and "context" not in view
    await ann.send_json_to({"type": "ack", "version": view["version"]})
    await ann.send_json_to({"type": "ready", "step": 0})
    console = await state_where(boss, lambda s: s["ready"] == 1)
    row = next(p for p in console["participants"] if p["id"] == world.pseudonyms[0])
    assert row["connected"] and row["status"] == "waiting"

    await boss.send_json_to({"type": "start"})
    started = await state_where(ann, lambda s: s["phase"] == "running")
    assert started["step"] == 0 and started["version"] > view["version"]
    await boss.send_json_to({"type": "advance", "step": 0})
    moved = await state_where(ann, lambda s: s["step"] == 1)
    assert moved["server_ms"] > 0
    # the console, still showing step 0, advances again: stale, nothing changes
    before = await call(selectors.snapshot, group_session_id=world.gs.pk)
    await boss.send_json_to({"type": "advance", "step": 0})
    assert (await next_of(boss, "error"))["code"] == "stale_step"
    assert await call(selectors.snapshot, group_session_id=world.gs.pk) == before
    await boss.send_json_to({"type": "set_context", "patch": {"round": 2}})
    assert (await state_where(boss, lambda s: s["context"] == {"round": 2}))["step"] == 1
    await ann.disconnect()
    await boss.disconnect()


async def test_pushed_snapshot_equals_fresh_one(world, call):
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    await boss.send_json_to({"type": "start"})
    pushed = await state_where(boss, lambda s: s["phase"] == "running")
    assert pushed == await call(selectors.snapshot, group_session_id=world.gs.pk)
    await boss.disconnect()


async def test_unacked_state_is_sent_again(world):
    ann = world.participant(0)
    await ann.connect()
    first = await next_of(ann, "group.state")
    again = await next_of(ann, "group.state", timeout=3)  # no ack: resent after ~1 s
    assert again == first
    await ann.send_json_to({"type": "ack", "version": first["version"]})
    await asyncio.sleep(0.1)
    assert await ann.receive_nothing(timeout=1.5)
    await ann.disconnect()


async def test_console_shows_who_is_behind(world):
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    ann = world.participant(0)
    await ann.connect()
    view = await next_of(ann, "group.state")
    await ann.send_json_to({"type": "ack", "version": view["version"]})
    state = await state_where(
        boss, lambda s: not next(p for p in s["participants"] if p["id"] == world.pseudonyms[0])["behind"]
    )
    assert next(p for p in state["participants"] if p["id"] == world.pseudonyms[1])["behind"]
    await ann.disconnect()
    await boss.disconnect()


async def test_disconnect_shows_on_console(world):
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    ann = world.participant(0)
    await ann.connect()
    await state_where(boss, lambda s: s["participants"][0]["connected"])
    await ann.disconnect()
    await state_where(boss, lambda s: not s["participants"][0]["connected"])
    await boss.disconnect()


async def test_kick_closes_participant_socket_and_console_shows_it(world, call):
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    bob = world.participant(1)
    await bob.connect()
    await next_of(bob, "group.state")
    await boss.send_json_to({"type": "kick", "participant": world.pseudonyms[1]})
    last = await next_of(bob, "group.state")
    assert last["me"]["status"] == "kicked"
    assert await bob.receive_output(timeout=2) == {"type": "websocket.close", "code": 4010}
    console = await state_where(
        boss, lambda s: {p["id"]: p for p in s["participants"]}[world.pseudonyms[1]]["status"] == "kicked"
    )
    assert console["active"] == 1
    await bob.disconnect()
    await refused_with(world.participant(1), 4010, "kicked")  # cannot come back
    await boss.send_json_to({"type": "kick", "participant": "Pnobody"})
    assert (await next_of(boss, "error"))["code"] == "unknown_participant"
    await boss.disconnect()


async def test_response_over_http_path_updates_console(world, call):
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    await call(services.group_session_start, group_session=world.gs.pk, by=world.staff)
    await call(answers.record_response, session=world.sessions[0], step=0)
    await call(answers.record_response, session=world.sessions[1], step=0)
    state = await state_where(boss, lambda s: s["all_responded"])
    assert state["ready"] == 2
    await boss.disconnect()


async def test_silent_participant_is_closed_and_shown_offline(world, monkeypatch):
    from realtime import consumers

    monkeypatch.setattr(consumers, "PRESENCE_TIMEOUT_SECONDS", 0.4)
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    ann = world.participant(0)
    await ann.connect()
    await state_where(boss, lambda s: s["participants"][0]["connected"])
    while True:  # no pings: the server gives up on the socket
        output = await ann.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            assert output["code"] == 4008
            break
    await ann.disconnect()
    await state_where(boss, lambda s: not s["participants"][0]["connected"])
    await boss.disconnect()


async def test_reconnect_gets_the_current_state(world, call):
    ann = world.participant(0)
    await ann.connect()
    first = await next_of(ann, "group.state")
    await ann.disconnect()
    await call(services.group_session_start, group_session=world.gs.pk, by=world.staff)
    await call(services.group_session_advance, group_session=world.gs.pk, step=0, by=world.staff)
    again = world.participant(0)
    await again.connect()
    view = await next_of(again, "group.state")
    assert (view["phase"], view["step"]) == ("running", 1) and view["version"] > first["version"]
    await again.disconnect()


async def test_an_open_console_is_counted_and_closing_it_takes_it_off(world, call):
    """Experimenter sockets are counted like participants' (per process, under its lease),
    without any participant's row changing: a full lobby asks an open console (issue 20)."""
    from groups import flowservices

    async def console_open_becomes(wanted: bool) -> bool:
        for _ in range(60):  # the hub writes presence in batches (GROUP_PRESENCE_FLUSH_SECONDS)
            if await call(flowservices.console_open, gs_id=world.gs.pk) == wanted:
                return True
            await asyncio.sleep(0.05)
        return False

    before = await call(selectors.snapshot, group_session_id=world.gs.pk)
    assert not await call(flowservices.console_open, gs_id=world.gs.pk)
    boss = world.experimenter()
    await boss.connect()
    await boss.receive_json_from()
    assert await console_open_becomes(True)
    await boss.disconnect()
    assert await console_open_becomes(False)
    after = await call(selectors.snapshot, group_session_id=world.gs.pk)
    assert after["participants"] == before["participants"]
