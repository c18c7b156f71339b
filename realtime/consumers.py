"""Group-session sockets (SPEC section 5). Thin: authenticate or close with a
4xxx code, join the group session's channel-layer group, send a snapshot, then
turn each client message into one service call; group events are only forwarded
(as the view this receiver may see).

Close codes: 4001 unauthenticated, 4003 forbidden, 4004 unknown group session,
4008 silent too long (presence timeout), 4009 frame too large, 4010 kicked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from groups import selectors, services
from groups.state import GroupError

from .broadcast import SNAPSHOT_EVENT
from .groups import group_session_group
from .schemas import EXPERIMENTER_TYPES, PARTICIPANT_TYPES, PongMsg, ProtocolError, error, parse_client_message

logger = logging.getLogger(__name__)

CLOSE_CODES = {"unauthenticated": 4001, "forbidden": 4003, "not_found": 4004, "kicked": 4010}
CLOSE_TIMEOUT, CLOSE_TOO_LARGE, CLOSE_KICKED = 4008, 4009, 4010
ACK_RESEND_SECONDS = getattr(settings, "GROUP_ACK_RESEND_SECONDS", 1.0)
ACK_RESEND_TIMES = getattr(settings, "GROUP_ACK_RESEND_TIMES", 30)
PRESENCE_TIMEOUT_SECONDS = getattr(settings, "GROUP_PRESENCE_TIMEOUT_SECONDS", 8.0)

assert SNAPSHOT_EVENT == "group.snapshot"  # handled by group_snapshot() below


class _GroupConsumer(AsyncWebsocketConsumer):
    allowed: frozenset[str] = frozenset()

    async def connect(self):
        self.gs_id = self.scope["url_route"]["kwargs"]["group_session_id"]
        self.joined = False
        self.sent_version = 0
        # Accept first so that the refusal carries its 4xxx code (a refused
        # handshake only shows the browser 1006).
        await self.accept()
        try:
            await self.authenticate()
        except GroupError as exc:
            await self.send_json(error(exc.code, exc.message))
            await self.close(code=CLOSE_CODES.get(exc.code, 4003))
            return
        await self.channel_layer.group_add(group_session_group(self.gs_id), self.channel_name)
        self.joined = True
        await self.after_join()

    async def disconnect(self, code):
        if self.joined:
            self.joined = False
            await self.channel_layer.group_discard(group_session_group(self.gs_id), self.channel_name)
            await self.after_leave()

    async def receive(self, text_data=None, bytes_data=None):
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_LARGE)
            return
        if not self.joined:
            return
        self.last_seen = time.monotonic()
        try:
            if text_data is None:
                raise ProtocolError("Send text frames with JSON objects.", code="bad_json")
            message = parse_client_message(text_data, allowed=self.allowed)
        except ProtocolError as exc:
            await self.send_json(error(exc.code, exc.message))
            return
        if message.type == "ping":
            await self.send_json(PongMsg(t=message.t, server_ms=int(time.time() * 1000)).model_dump())
            return
        try:
            await self.handle(message)
        except GroupError as exc:
            await self.send_json(error(exc.code, exc.message))
        except Exception:
            logger.exception("group socket %s: %s failed", self.gs_id, message.type)
            await self.send_json(error("internal", "The server could not do that."))

    async def send_json(self, content: dict):
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    async def group_snapshot(self, event):
        await self.forward(event["state"])

    # Subclass API
    async def authenticate(self): ...
    async def after_join(self): ...
    async def after_leave(self): ...
    async def handle(self, message): ...
    async def forward(self, state: dict): ...


class ExperimenterConsumer(_GroupConsumer):
    """``/ws/group/<id>/experimenter/``: a staff user attached with the experimenter code."""

    allowed = EXPERIMENTER_TYPES
    COMMANDS = {
        "start": services.group_session_start,
        "pause": services.group_session_pause,
        "resume": services.group_session_resume,
        "exit_loop": services.group_session_exit_loop,
        "end": services.group_session_end,
        "abort": services.group_session_abort,
        "advance": services.group_session_advance,
        "set_context": services.group_session_set_context,
        "kick": services.group_session_kick,
    }

    async def authenticate(self):
        self.user = self.scope.get("user")
        await database_sync_to_async(selectors.authenticate_experimenter)(group_session_id=self.gs_id, user=self.user)

    async def after_join(self):
        await self.forward(await database_sync_to_async(selectors.snapshot)(self.gs_id))

    async def handle(self, message):
        fields = message.model_dump(exclude={"type"})
        service = self.COMMANDS[message.type]
        await database_sync_to_async(service)(group_session=self.gs_id, by=self.user, **fields)

    async def forward(self, state: dict):
        if state["version"] > self.sent_version:
            self.sent_version = state["version"]
            await self.send_json(state)


class ParticipantConsumer(_GroupConsumer):
    """``/ws/group/<id>/participant/``: a participant run (run cookie) of this group session.

    Sends the participant view on connect and whenever participants' part of the state
    changes; resends it every second until acknowledged; closes a socket silent for
    longer than the presence timeout (clients ping every few seconds).
    """

    allowed = PARTICIPANT_TYPES

    async def authenticate(self):
        self.identity = await database_sync_to_async(selectors.authenticate_participant)(
            group_session_id=self.gs_id, cookies=self.scope.get("cookies", {})
        )
        self.pseudonym = self.identity.pseudonym
        self.acked = 0
        self.sent_pv = 0
        self.last_view = None
        self.last_seen = time.monotonic()
        self.tasks: list[asyncio.Task] = []

    async def after_join(self):
        await database_sync_to_async(services.participant_connected)(
            group_session=self.gs_id, participant=self.pseudonym
        )
        self.connected_recorded = True
        await self.forward(await database_sync_to_async(selectors.snapshot)(self.gs_id), force=True)
        self.tasks = [asyncio.create_task(self._resend_unacked()), asyncio.create_task(self._watch_presence())]

    async def after_leave(self):
        for task in self.tasks:
            task.cancel()
        await database_sync_to_async(services.participant_disconnected)(
            group_session=self.gs_id, participant=self.pseudonym
        )

    async def handle(self, message):
        if message.type == "ack":
            self.acked = max(self.acked, message.version)
            await database_sync_to_async(services.record_ack)(
                group_session=self.gs_id, participant=self.pseudonym, version=message.version
            )
        elif message.type == "ready":
            await database_sync_to_async(services.participant_ready)(
                group_session=self.gs_id, participant=self.pseudonym, step=message.step
            )

    async def forward(self, state: dict, *, force: bool = False):
        if state["version"] <= self.sent_version:
            return
        if not force and state["participant_version"] <= self.sent_pv:
            return  # nothing participants can see changed
        view = selectors.participant_view(state, self.pseudonym)
        self.sent_version, self.sent_pv, self.last_view = state["version"], state["participant_version"], view
        self.resends = 0
        await self.send_json(view)
        if view["me"]["status"] == "kicked":
            await self.close(code=CLOSE_KICKED)

    async def _resend_unacked(self):
        while True:
            await asyncio.sleep(ACK_RESEND_SECONDS)
            view = self.last_view
            if view is not None and self.acked < view["version"] and self.resends < ACK_RESEND_TIMES:
                self.resends += 1
                await self.send_json(view)

    async def _watch_presence(self):
        while True:
            await asyncio.sleep(min(2.0, PRESENCE_TIMEOUT_SECONDS / 2))
            if time.monotonic() - self.last_seen > PRESENCE_TIMEOUT_SECONDS:
                await self.close(code=CLOSE_TIMEOUT)
                return


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other socket path: refused with 4004 (a code, not a failed handshake)."""

    async def connect(self):
        await self.accept()
        await self.send(text_data=json.dumps(error("not_found", "No such socket.")))
        await self.close(code=4004)
