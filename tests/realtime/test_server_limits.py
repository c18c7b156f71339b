"""Socket limits through a real server process (``python -m project.serve``) and a
``websockets`` client: what daphne and autobahn do before our consumers see a frame
(issue 14). The communicator tests cannot show these: they skip the server."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidStatus

from groups import selectors
from tests.e2e.conftest import e2e_static_root, live_server_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_launcher_closes_with_the_consumers_code():
    from project import serve
    from realtime import consumers

    assert serve.CLOSE_TOO_LARGE == consumers.CLOSE_TOO_LARGE


@pytest.fixture(scope="module")
def server(live_server_factory):  # noqa: F811 - the imported fixture
    return live_server_factory()


def _ws_url(server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def _participant(server, world, index: int = 0, origin: str | None = None):
    cookie = "; ".join(f"{k}={v}" for k, v in world.run_cookies(index).items())
    return websockets.connect(
        _ws_url(server, f"/ws/group/{world.gs.pk}/participant/"),
        additional_headers={"Cookie": cookie},
        origin=origin or server.url,
        max_size=None,
        open_timeout=10,
    )


async def _next(ws, kind: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["type"] == kind:
            return message


async def _closed_with(ws) -> int | None:
    """The close code the server sent (None: no close frame, the TCP connection dropped)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def _connected(world, *, want: bool) -> bool:
    from channels.db import database_sync_to_async

    for _ in range(50):
        state = await database_sync_to_async(selectors.snapshot)(group_session_id=world.gs.pk)
        row = next(p for p in state["participants"] if p["id"] == world.pseudonyms[0])
        if row["connected"] == want:
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 3 * 1024 * 1024], ids=["just over daphne's 1 MiB", "3 MiB"])
async def test_a_frame_over_a_mebibyte_closes_4009(server, world, size):
    async with _participant(server, world) as ws:
        await _next(ws, "group.state")
        assert await _connected(world, want=True)
        await ws.send("x" * size)
        assert await _closed_with(ws) == 4009  # was: no close frame (TCP dropped, the browser sees 1006)
    assert await _connected(world, want=False)


async def test_a_frame_over_the_message_limit_closes_4009(server, world):
    async with _participant(server, world) as ws:
        await _next(ws, "group.state")
        await ws.send(json.dumps({"type": "ping", "t": 1, "pad": "x" * settings.WS_MAX_MESSAGE_BYTES}))
        assert await _closed_with(ws) == 4009
    assert await _connected(world, want=False)


async def test_deeply_nested_json_is_refused_and_the_socket_stays(server, world):
    async with _participant(server, world) as ws:
        await _next(ws, "group.state")
        await ws.send("[" * 50000)
        refusal = await _next(ws, "error")
        assert refusal["code"] == "bad_json" and "nested" in refusal["message"]
        await ws.send(json.dumps({"type": "ping", "t": 5}))
        assert (await _next(ws, "pong"))["t"] == 5  # still open and answering
    assert await _connected(world, want=False)
    log = server.log()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


async def test_a_foreign_origin_is_refused_at_the_handshake_with_403(server, world):
    """Documented in docs/groups.md: Channels' origin check refuses the handshake
    itself, so nothing of ours runs for a cross-site page (the browser sees 1006)."""
    with pytest.raises(InvalidStatus) as refused:
        async with _participant(server, world, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    assert await _connected(world, want=False)
