"""Baseline (1), the floor: a bare ``websockets`` server broadcasting the same payload.

    python bench/baseline_ws.py PORT

``/p`` participants: sent the current state on connect, then every new state
(``websockets.broadcast``: one encoded frame written to every socket); acks and pings
are read and ignored. ``/c`` the controller: ``{"type": "advance", "step": N}`` moves
to step N + 1. ``/healthz`` answers HTTP 200.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from http import HTTPStatus

import websockets
from websockets.asyncio.server import broadcast, serve

STATE = {"version": 1, "step": 0}
PARTICIPANTS: set = set()


def payload() -> str:
    """The same shape and size as a participant's ``group.state`` view."""
    return json.dumps(
        {"type": "group.state", "version": STATE["version"], "group_session": 1, "phase": "running",
         "step": STATE["step"], "server_ms": int(time.time() * 1000), "shared_params": {}, "exit_loop": False,
         "run_url": "/run/1/", "size": 1000, "ready": 0, "active": 1000, "all_responded": False,
         "me": {"id": "PABCDEF", "status": "waiting", "responded_step": None}},
        separators=(",", ":"),
    )  # fmt: skip


async def handler(ws) -> None:
    path = ws.request.path
    if path.startswith("/p"):
        PARTICIPANTS.add(ws)
        try:
            await ws.send(payload())
            async for _ in ws:
                pass
        finally:
            PARTICIPANTS.discard(ws)
    elif path.startswith("/c"):
        async for message in ws:
            data = json.loads(message)
            if data.get("type") == "advance" and data.get("step") == STATE["step"]:
                STATE["version"] += 1
                STATE["step"] += 1
                broadcast(PARTICIPANTS, payload())


def health(connection, request):
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return None


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, process_request=health, compression=None, ping_interval=None,
                     max_size=2**20, backlog=4096):  # fmt: skip
        await asyncio.Future()


if __name__ == "__main__":
    assert websockets
    asyncio.run(main(int(sys.argv[1])))
