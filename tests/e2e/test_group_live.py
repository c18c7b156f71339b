"""Live group sessions end to end on real daphne processes.

- The Python controller (groups.client) on one server process, participant sockets
  on another: both processes share PostgreSQL/SQLite and Redis and behave as one.
- The console and the participant pages in Chromium: attach by code, waiting
  screen, Start, answer, Advance (enabled when all answered), Kick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets
from django.conf import settings
from django.contrib.auth import get_user_model

from groups import services
from groups.client import GroupController
from groups.state import GroupError
from runner.models import Ticket
from tests.e2e.pages import attach_console
from tests.factories import ExperimentFactory, SessionFactory
from tests.runner.builders import build_lockstep_experiment

PASSWORD = "pw-live-123456"


def _participant_socket(server, gs, session):
    url = server.url.replace("http", "ws", 1) + f"/ws/group/{gs.pk}/participant/"
    cookie = f"{settings.RUN_COOKIE_NAME}{gs.experiment_id}={session.run_token}"
    return websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": server.url})


async def _state_where(ws, predicate, timeout=10):
    async def loop():
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "group.state":
                with contextlib.suppress(websockets.ConnectionClosed):  # a kicked socket is closing
                    await ws.send(json.dumps({"type": "ack", "version": message["version"]}))
                if predicate(message):
                    return message

    return await asyncio.wait_for(loop(), timeout)


@pytest.mark.redis
def test_controller_and_participants_on_different_processes(live_server_factory, transactional_db):
    server_a, server_b = live_server_factory(), live_server_factory()
    get_user_model().objects.create_user("ctl", password=PASSWORD, is_staff=True)
    experiment = ExperimentFactory(is_group=True)
    gs = services.start_group_session(experiment=experiment, size=2)
    ticket = Ticket.objects.get(pk=gs.ticket_id)
    sessions = [SessionFactory(experiment=experiment, ticket=ticket) for _ in range(2)]
    pseudonyms = [services.attach_participant(session=s, ticket=ticket).pseudonym for s in sessions]

    async def scenario():
        async with GroupController(server_a.url, username="ctl", password=PASSWORD,
                                   experimenter_code=gs.experimenter_code.lower()) as ctl:  # fmt: skip
            assert ctl.group_session_id == gs.pk and ctl.state["phase"] == "waiting"
            async with _participant_socket(server_b, gs, sessions[0]) as ann, \
                    _participant_socket(server_b, gs, sessions[1]) as bob:  # fmt: skip
                for ws in (ann, bob):
                    await _state_where(ws, lambda s: s["phase"] == "waiting")
                await ctl.wait_for(lambda s: all(p["connected"] for p in s["participants"]), timeout=10)
                await ctl.start()
                for ws in (ann, bob):
                    await _state_where(ws, lambda s: s["phase"] == "running" and s["step"] == 0)
                moved = await ctl.advance()
                assert moved["step"] == 1
                for ws in (ann, bob):
                    await _state_where(ws, lambda s: s["step"] == 1)
                with pytest.raises(GroupError) as info:
                    await ctl.advance(0)
                assert info.value.code == "stale_step"
                assert (await ctl.set_context({"round": 2}))["context"] == {"round": 2}
                await ctl.kick(pseudonyms[1])
                await _state_where(bob, lambda s: s["me"]["status"] == "kicked")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(bob.recv(), 5)
                assert closed.value.rcvd.code == 4010
                state = await ctl.wait_for(lambda s: s["active"] == 1)
                assert {p["id"]: p["status"] for p in state["participants"]}[pseudonyms[1]] == "kicked"
            await ctl.wait_for(lambda s: not any(p["connected"] for p in s["participants"]), timeout=10)

    asyncio.run(scenario())


@pytest.mark.browser
def test_console_and_participant_in_the_browser(daphne_server, new_page, transactional_db, artifacts):
    get_user_model().objects.create_user("lead", password=PASSWORD, is_staff=True)
    experiment = build_lockstep_experiment(3, title="Live demo")
    gs = services.start_group_session(experiment=experiment, size=1)
    base = daphne_server.url

    console = new_page()
    attach_console(console, base, gs, username="lead", password=PASSWORD)
    assert console.get_by_test_id("participant-code").inner_text() == gs.participant_code
    console.locator("[data-link]", has_text="online").wait_for()

    phone = new_page(width=390, height=844)
    phone.goto(f"{base}/run/{experiment.pk}/start/")  # no ticket: the participant-code page
    phone.fill("#id_code", gs.participant_code.lower())
    phone.get_by_role("button", name="Join").click()
    phone.get_by_text("Waiting for the experimenter to start").wait_for()
    row = console.locator("[data-participants] tr").first
    row.get_by_text("online").wait_for()

    console.get_by_role("button", name="Start", exact=True).click()
    phone.locator("input[name=q-warm]").first.wait_for()  # the waiting page moved on by itself
    assert console.get_by_role("button", name="Advance", exact=True).is_disabled()
    phone.get_by_label("Yes").check()
    phone.get_by_role("button", name="Next").click()
    phone.get_by_text("1 of 1 answered").wait_for()
    advance = console.get_by_role("button", name="Advance", exact=True)
    console.wait_for_function("() => !document.querySelector('[data-cmd=advance]').disabled")
    advance.click()
    console.locator("[data-step]", has_text="1").wait_for()
    phone.locator("input[name=q-warm]").first.wait_for()
    assert phone.locator("input[name=q-_group_step]").get_attribute("value") == "1"
    console.screenshot(path=str(artifacts / "group-console.png"), full_page=True)
    phone.screenshot(path=str(artifacts / "group-participant.png"), full_page=True)

    console.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Kick").click()
    phone.get_by_text("no longer in this group session").wait_for()
    console.locator("[data-participants] tr", has_text="kicked").wait_for()


@pytest.mark.browser
def test_frames_of_every_size_reach_websockets_clients_intact(daphne_server, transactional_db):
    """Through a real daphne, where the hub writes frames straight onto the sockets
    (realtime/wire.py): a console snapshot over 64 KiB (the 8-byte length form), one
    between 126 and 64 KiB and the participants' small ones all parse in the
    ``websockets`` client, in order, nothing lost or doubled."""
    get_user_model().objects.create_user("big", password=PASSWORD, is_staff=True)
    experiment = ExperimentFactory(is_group=True)
    gs = services.start_group_session(experiment=experiment, size=2)
    ticket = Ticket.objects.get(pk=gs.ticket_id)
    sessions = [SessionFactory(experiment=experiment, ticket=ticket) for _ in range(2)]
    for session in sessions:
        services.attach_participant(session=session, ticket=ticket)
    sizes = []

    async def scenario():
        async with GroupController(daphne_server.url, username="big", password=PASSWORD,
                                   experimenter_code=gs.experimenter_code) as ctl:  # fmt: skip
            async with _participant_socket(daphne_server, gs, sessions[0]) as ann, \
                    _participant_socket(daphne_server, gs, sessions[1]) as bob:  # fmt: skip
                for ws in (ann, bob):
                    await _state_where(ws, lambda s: s["phase"] == "waiting")
                await ctl.start()
                for step, patch in enumerate([{"a": "x" * 30_000}, {"b": "é" * 7_000}], start=1):
                    state = await ctl.set_context(patch)
                    sizes.append(len(json.dumps(state, separators=(",", ":")).encode()))
                    await ctl.advance()
                    for ws in (ann, bob):
                        view = await _state_where(ws, lambda s, step=step: s["step"] == step)
                        assert "context" not in view and view["me"]["status"] != "kicked"
                final = await ctl.wait_for(lambda s: s["step"] == 2)
                assert final["context"] == {"a": "x" * 30_000, "b": "é" * 7_000}
            # the server records the closed sockets before the test's database is emptied
            await ctl.wait_for(lambda s: not any(p["connected"] for p in s["participants"]), timeout=10)

    with ThreadPoolExecutor(1) as thread:  # its own event loop, whatever Playwright left running here
        thread.submit(asyncio.run, scenario()).result()
    assert sizes[0] > 30_000 and sizes[1] > 65_536  # both long length forms were on the wire


def test_the_controller_pings_as_the_console_does(daphne_server, transactional_db, monkeypatch):
    """groups.client.GroupController sends a ping every PING_SECONDS while connected (the
    server closes a silent socket; a script that only watches would send nothing)."""
    from groups import client

    monkeypatch.setattr(client, "PING_SECONDS", 0.2)
    get_user_model().objects.create_user("pinger", password=PASSWORD, is_staff=True)
    gs = services.start_group_session(experiment=ExperimentFactory(is_group=True), size=1)

    async def scenario():
        async with GroupController(daphne_server.url, username="pinger", password=PASSWORD,
                                   experimenter_code=gs.experimenter_code) as ctl:  # fmt: skip
            assert ctl.last_pong is None  # the first ping goes after PING_SECONDS
            pongs = []
            for _ in range(60):
                await asyncio.sleep(0.05)
                if ctl.last_pong is not None and ctl.last_pong not in pongs:
                    pongs.append(ctl.last_pong)
            assert len(pongs) >= 2, pongs  # pinged again and again, each answered by the server
            assert all(p["server_ms"] > 0 for p in pongs)
            assert (await ctl.set_context({"still": "open"}))["context"] == {"still": "open"}

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API may hold this thread's event loop
        thread.submit(asyncio.run, scenario()).result()
