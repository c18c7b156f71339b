"""Group-session sockets (SPEC section 5). Thin: authenticate or close with a
4xxx code, register with this process's hub (``realtime.broadcast``), send the
snapshot, then turn each client message into one service call; group states are
only forwarded, as the pre-serialised view this receiver may see.

Acks and presence are not written one by one: the hub collects them and writes
them together (the registered ``record_presence``, ``realtime.ports``). One hub timer per process
re-sends unacknowledged views every ``GROUP_ACK_RESEND_SECONDS`` and closes sockets
silent for longer than ``GROUP_PRESENCE_TIMEOUT_SECONDS`` (no task per socket).

Close codes: 4001 unauthenticated, 4003 forbidden, 4004 unknown group session,
4008 silent too long (presence timeout), 4009 frame too large, 4010 kicked, 4011 the
server failed (after its bookkeeping: the client reconnects). No exception leaves a
consumer: one that would have ended it (daphne's bare 1011, with this socket still
counted as connected) is logged, the disconnect bookkeeping runs, and the socket is
closed 4011.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from project.core.errors import CodedError

from . import live
from .broadcast import get_hub
from .frames import ABSENT_STATUS, Frames
from .ports import CONSOLE, group
from .schemas import EXPERIMENTER_TYPES, PARTICIPANT_TYPES, PongMsg, ProtocolError, error, parse_client_message
from .wire import SEND_AFTER_CLOSE, direct_writer, text_frame

logger = logging.getLogger(__name__)

CLOSE_CODES = {"unauthenticated": 4001, "forbidden": 4003, "not_found": 4004, "kicked": 4010}
CLOSE_TIMEOUT, CLOSE_TOO_LARGE, CLOSE_KICKED, CLOSE_INTERNAL = 4008, 4009, 4010, 4011
ACK_RESEND_SECONDS = getattr(settings, "GROUP_ACK_RESEND_SECONDS", 1.0)
ACK_RESEND_TIMES = getattr(settings, "GROUP_ACK_RESEND_TIMES", 30)
PRESENCE_TIMEOUT_SECONDS = getattr(settings, "GROUP_PRESENCE_TIMEOUT_SECONDS", 8.0)
MAX_JSON_DEPTH = getattr(settings, "WS_MAX_JSON_DEPTH", 32)
NO_CHANNEL_LAYER = "sockets-here-use-no-channel-layer"  # an alias naming no layer: Channels gives None


def _dumps(content: dict) -> str:
    """A message's text: compact, and never NaN or Infinity (a ValueError instead)."""
    return json.dumps(content, separators=(",", ":"), allow_nan=False)


class _GroupConsumer(AsyncWebsocketConsumer):
    allowed: frozenset[str] = frozenset()
    # Group sockets get their states from the process's hub, not the channel layer: no
    # channel, no per-socket Redis receive loop (an alias that names no layer gives None).
    channel_layer_alias = NO_CHANNEL_LAYER
    joined = False  # held by the hub: ``disconnect`` undoes it (also after a failed ``connect``)

    async def connect(self):
        self.gs_id = self.scope["url_route"]["kwargs"]["group_session_id"]
        self.joined = False
        self.sent_version = 0
        self.hub = None
        self.writer = None
        # Accept first so that the refusal carries its 4xxx code (a refused
        # handshake only shows the browser 1006).
        await self.accept()
        try:
            await self.authenticate()
        except CodedError as exc:
            await self.send_json(error(exc.code, exc.message))
            await self.close(code=CLOSE_CODES.get(exc.code, 4003))
            return
        self.writer = direct_writer(self.scope)
        self.hub = get_hub()
        self.ports = group()  # the domain's callbacks (realtime.ports), looked up once per socket
        self.joined = True
        await self.hub.register(self.gs_id, self)  # before the snapshot: no change falls in between
        await self.after_join()

    async def disconnect(self, code):
        if self.joined:
            self.joined = False
            self.hub.unregister(self.gs_id, self)
            await self.after_leave()

    async def dispatch(self, message):
        """Channels' dispatch, without its ``aclose_old_connections()`` before every
        received frame: that sends each ack and ping through the one database thread,
        where it queues behind (and delays) the experimenter's advance. These consumers
        use the ORM only through ``database_sync_to_async``, which closes old connections
        itself. An exception never leaves it (see the module): ``fail``."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except (StopConsumer, asyncio.CancelledError):
            raise
        except Exception:
            logger.exception("group socket %s: %s failed", getattr(self, "gs_id", "?"), message["type"])
            await self.fail(closed=message["type"] == "websocket.disconnect")

    async def fail(self, *, closed: bool) -> None:
        """After an unexpected exception: the disconnect bookkeeping, then close 4011
        (or, when the client is already gone, end the consumer)."""
        try:
            await self.disconnect(CLOSE_INTERNAL)
        except Exception:
            logger.exception("group socket %s: disconnect bookkeeping failed", getattr(self, "gs_id", "?"))
        if closed:
            raise StopConsumer()
        await self.close(code=CLOSE_INTERNAL)

    async def receive(self, text_data=None, bytes_data=None):
        size = len(text_data.encode("utf-8", "surrogatepass")) if text_data is not None else len(bytes_data or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            await self.close(code=CLOSE_TOO_LARGE)
            return
        if not self.joined:
            return
        self.last_seen = time.monotonic()
        try:
            if text_data is None:
                raise ProtocolError("Send text frames with JSON objects.", code="bad_json")
            message = parse_client_message(text_data, allowed=self.allowed, max_depth=MAX_JSON_DEPTH)
        except ProtocolError as exc:
            await self.send_json(error(exc.code, exc.message))
            return
        if message.type == "ping":  # stamped last and written straight onto the socket where it can be
            # rounded, not truncated: a truncated stamp is 0.5 ms early on average, and every
            # page's offset estimate with it (pages on either side of a frame's edge)
            await self.send_text(_dumps(PongMsg(t=message.t, server_ms=round(time.time() * 1000)).model_dump()))
            return
        try:
            await self.handle(message)
        except CodedError as exc:
            await self.send_json(error(exc.code, exc.message))
        except Exception:
            logger.exception("group socket %s: %s failed", self.gs_id, message.type)
            await self.send_json(error("internal", "The server could not do that."))

    async def send(self, text_data=None, bytes_data=None, close=False):
        """Channels' send; a frame for a client that is already leaving (its close or a
        dropped connection reached daphne, the disconnect not yet this consumer) is
        dropped and logged at debug: the disconnect bookkeeping follows, and the client
        gets the state again when it reconnects. Other failures propagate as before."""
        try:
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        except SEND_AFTER_CLOSE as exc:
            logger.debug("group socket %s: frame dropped, the client is leaving (%s)", getattr(self, "gs_id", "?"), exc)

    async def send_json(self, content: dict):
        """Send one message; never NaN or Infinity, which browsers cannot parse (a
        ValueError instead)."""
        await self.send(text_data=_dumps(content))

    def write_direct(self, text: str) -> bool:
        """Write a pre-serialised frame straight onto the socket, where daphne's
        connection allows it now (``realtime.wire``); False when it did not."""
        return self.writer is not None and self.writer.write_text(text)

    async def send_text(self, text: str) -> None:
        """Send a pre-serialised frame: ``write_direct``, else through the ASGI send."""
        if not self.write_direct(text):
            await self.send(text_data=text)

    # Subclass API
    async def authenticate(self): ...
    async def after_join(self): ...
    async def after_leave(self): ...
    async def handle(self, message): ...
    async def push(self, frames: Frames, *, force: bool = False): ...

    def tick(self, now: float) -> None:
        """Called by the hub's timer about twice a second."""


class ExperimenterConsumer(_GroupConsumer):
    """``/ws/group/<id>/experimenter/``: a staff user attached with the experimenter code."""

    allowed = EXPERIMENTER_TYPES
    counted = False  # this console was counted (+1) in the presence batches: leaving notes -1

    async def authenticate(self):
        self.user = self.scope.get("user")
        await database_sync_to_async(group().authenticate_experimenter)(group_session_id=self.gs_id, user=self.user)

    async def after_join(self):
        # Counted like a participant's sockets (per process, under its lease): whether a
        # console is open decides if a full lobby starts by itself (issue 20).
        self.hub.note(self.gs_id, CONSOLE, connections=+1)
        self.counted = True
        await self.push(await self.hub.current(self.gs_id))

    async def after_leave(self):
        if self.counted:
            self.counted = False
            self.hub.note(self.gs_id, CONSOLE, connections=-1)

    async def handle(self, message):
        fields = message.model_dump(exclude={"type"})
        service = self.ports.commands[message.type]
        await database_sync_to_async(service)(group_session=self.gs_id, by=self.user, **fields)

    async def push(self, frames: Frames, *, force: bool = False):
        if frames.version > self.sent_version and not frames.console_pending:  # (pending: it follows)
            self.sent_version = frames.version
            await self.send_text(frames.experimenter)


class ParticipantConsumer(_GroupConsumer):
    """``/ws/group/<id>/participant/``: a participant run (run cookie) of this group session.

    Sends the participant view on connect and whenever participants' part of the state
    changes; resends it every second until acknowledged; closes a socket silent for
    longer than the presence timeout (clients ping every few seconds).
    """

    allowed = PARTICIPANT_TYPES
    counted = False  # this socket's connection was noted (+1): leaving notes -1

    async def authenticate(self):
        self.identity = await _authenticate_participant(self.gs_id, self.scope.get("cookies", {}))
        self.pseudonym = self.identity.pseudonym
        self.acked = 0
        self.sent_pv = 0
        self.sent_at = 0.0
        self.last_text = None
        self.last_text_version = 0
        self.resends = 0
        self.closing = False
        self.last_seen = time.monotonic()
        self.content_step = None  # the step whose content this socket was sent (the live page)

    async def after_join(self):
        # The first view carries the change that records this connection (written
        # together with the other connects and acks of the next FLUSH_SECONDS).
        noted = self.hub.note(self.gs_id, self.pseudonym, connections=+1)
        self.counted = True
        version = await noted
        await self.push(await self.hub.current(self.gs_id, self.pseudonym, min_version=version or 0), force=True)

    async def after_leave(self):
        if self.counted:
            self.counted = False
            self.hub.note(self.gs_id, self.pseudonym, connections=-1)

    async def handle(self, message):
        if message.type == "ack":
            if message.version > self.sent_version:
                raise CodedError(f"Version {message.version} was never sent.", code="bad_version")
            if message.version > self.acked:
                self.acked = message.version
                self.hub.note(self.gs_id, self.pseudonym, ack=message.version)
        elif message.type == "ready":  # batched like acks: N pages gathering are one change per batch
            self._check_current(message.step)
            self.hub.note(self.gs_id, self.pseudonym, ready=message.step)
        else:  # the live page's onset, location and jsPsych errors: batched (realtime.live)
            live.Reports.get().add(self.gs_id, self.pseudonym, message)

    def _check_current(self, step: int) -> None:
        """Refuse, at once, a ``ready`` for a step other than the one this process last
        published, as the state machine would (the batch that writes it checks again, under
        the lock, and skips what the state machine refuses)."""
        frames = self.hub.frames.get(self.gs_id)
        if frames is not None:
            self.ports.check_ready(*frames.where(), step)

    async def push(self, frames: Frames, *, force: bool = False):
        if frames.version <= self.sent_version or self.closing or not frames.knows(self.pseudonym):
            return  # (a snapshot read before this participant joined: a newer one follows)
        if not force and frames.participant_version <= self.sent_pv:
            return  # nothing participants can see changed
        text = frames.participant(self.pseudonym)
        self.sent_version, self.sent_pv = frames.version, frames.participant_version
        self.last_text, self.last_text_version = text, frames.version
        self.resends, self.sent_at = 0, time.monotonic()
        phase, step = frames.where()
        content = None
        if phase in ("running", "paused") and self.content_step != step:
            content = live.content_of(frames, self.gs_id, step)  # once per snapshot, not per socket
            if content is not None:
                self.content_step = step  # the step's content follows its first state on this socket
        if not self._write_with_content(text, live.content_frame(frames, step) if content is not None else None):
            await self.send_text(text)
            if content is not None:
                live.push_content(self, step, content)
        if frames.status_of(self.pseudonym) == ABSENT_STATUS:
            self.closing = True
            await self.close(code=CLOSE_KICKED)

    def _write_with_content(self, text: str, content: bytes | None) -> bool:
        """The state ``text`` and the step's content frame already built, in one write (the
        fan-out's cost is per write); False when not both can go straight onto the socket."""
        return (
            content is not None
            and self.writer is not None
            and self.writer.write_frames(text_frame(text.encode()) + content)
        )

    def content_ready(self, step: int, text: str) -> None:
        """``realtime.live``: the content of ``step`` is built; sent unless the socket moved on."""
        if self.closing or step != self.content_step or not self.joined:
            return
        if not self.write_direct(text):
            asyncio.ensure_future(self.send(text_data=text))

    def tick(self, now: float) -> None:
        if self.closing:
            return
        if now - self.last_seen > PRESENCE_TIMEOUT_SECONDS:
            self.closing = True
            asyncio.ensure_future(self.close(code=CLOSE_TIMEOUT))
            return
        if (
            self.last_text is not None
            and self.acked < self.last_text_version
            and self.resends < ACK_RESEND_TIMES
            and now - self.sent_at >= ACK_RESEND_SECONDS
        ):
            self.resends += 1
            self.sent_at = now
            if not self.write_direct(self.last_text):
                asyncio.ensure_future(self.send(text_data=self.last_text))


_auth_batches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
AUTH_BATCH_SECONDS = 0.002


async def _authenticate_participant(gs_id: int, cookies: dict):
    """The registered ``authenticate_participants`` of one socket, batched: sockets that connect together
    (a room of participants, a reconnect wave) are checked in one trip to the database
    thread, on one database connection, instead of one trip and connection each."""
    loop = asyncio.get_running_loop()
    batch = _auth_batches.get(loop)
    if batch is None:
        batch = _auth_batches[loop] = []
        loop.call_later(AUTH_BATCH_SECONDS, lambda: loop.create_task(_authenticate_batch(loop)))
    future = loop.create_future()
    batch.append((gs_id, cookies, future))
    return await future


async def _authenticate_batch(loop) -> None:
    batch = _auth_batches.pop(loop, [])

    def check_all():
        return group().authenticate_participants([(gs_id, cookies) for gs_id, cookies, _ in batch])

    try:
        results = await database_sync_to_async(check_all)()
    except Exception as exc:  # noqa: BLE001 - every socket of the batch gets the error
        results = [exc] * len(batch)
    for (_, _, future), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other socket path: refused with 4004 (a code, not a failed handshake),
    without the channel layer (no channel, no Redis: nothing to receive)."""

    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self):
        await self.accept()
        await self.send(text_data=json.dumps(error("not_found", "No such socket."), allow_nan=False))
        await self.close(code=4004)
