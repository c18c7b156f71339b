"""The live page's traffic on participant sockets (docs/groups.md, "The live page").

- ``content_of(frames, group_session_id, step)`` (once per snapshot) and ``push_content(consumer,
  step, future)``: a step's content (``group.content``)
  is built once per step per process (by the domain, ``ports.GroupPorts.step_content``,
  or already when the process published the step: ``prebuilt_content``) and serialised once; every socket of the group
  session gets the same text, when it is ready, right after the state that starts the step.
- ``Reports``: what pages report (onsets, where they are, jsPsych errors) is collected per
  group session and written together every ``GROUP_PRESENCE_FLUSH_SECONDS``, like
  acknowledgements (``ports.GroupPorts.record_reports``: one change per batch).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref

from channels.db import database_sync_to_async
from django.conf import settings

from .broadcast import FLUSH_SECONDS
from .ports import group
from .wire import text_frame

logger = logging.getLogger(__name__)

KEEP_STEPS = 4  # contents kept per process (latest steps of any group session)
_contents: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> {(gs, step): Future[str | None]}
_reports: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loop -> Reports


def pushes_content() -> bool:
    return bool(getattr(settings, "GROUP_LIVE_PUSH_CONTENT", True)) and group().step_content is not None


async def _built(group_session_id: int, step: int) -> str | None:
    try:
        return await database_sync_to_async(group().step_content)(group_session_id, step)
    except Exception:
        logger.exception("content of group session %s step %s could not be built", group_session_id, step)
        return None


def content_of(frames, group_session_id: int, step: int):
    """The future of ``step``'s content (its text, or None), or None when contents are not
    pushed: looked up once per snapshot (memo on ``frames``), not once per socket, so the
    fan-out pass of a step's first state stays a write per socket."""
    memo = frames.content
    if memo is None or memo[0] != step:
        frames.content = memo = (step, _future(group_session_id, step) if pushes_content() else None)
    return memo[1]


def content_frame(frames, step: int) -> bytes | None:
    """The wire frame of ``step``'s content (``content_of``) when it is built already, framed
    once per snapshot (``realtime.wire.text_frame``): the fan-out then writes each socket's
    state and content together, one write per socket instead of two. None otherwise."""
    memo = frames.content
    if memo is None or memo[0] != step or memo[1] is None or not memo[1].done() or memo[1].cancelled():
        return None
    if len(memo) < 3:
        text = memo[1].result()
        frames.content = memo = (*memo[:2], None if text is None else text_frame(text.encode()))
    return memo[2]


def push_content(consumer, step: int, future) -> None:
    """Send ``consumer`` the content of ``step`` (``content_of``) as soon as this process has it."""
    if future.done():
        _deliver(consumer, step, future)
    else:
        future.add_done_callback(lambda done: _deliver(consumer, step, done))


def _future(group_session_id: int, step: int):
    """This process's future of a step's content: cached, prebuilt or being built."""
    loop = asyncio.get_running_loop()
    cache = _contents.setdefault(loop, {})
    future = cache.get((group_session_id, step))
    if future is None:
        future = _prebuilt(loop, group_session_id, step)
    if future is None:
        # A fresh context: this may run inside a state's delivery that started in the database
        # thread (asgiref would refuse its single thread as a deadlock).
        future = cache[(group_session_id, step)] = loop.create_task(
            _built(group_session_id, step), context=contextvars.Context()
        )
        while len(cache) > KEEP_STEPS:
            cache.pop(next(iter(cache)))
    return future


def _prebuilt(loop, group_session_id: int, step: int):
    """The content this process built when it published the step (groups.live_content), as a
    done future in the cache, or None."""
    try:
        text = group().prebuilt_content(group_session_id, step)
    except KeyError:
        return None
    future = loop.create_future()
    future.set_result(text)
    _contents.setdefault(loop, {})[(group_session_id, step)] = future
    return future


def _deliver(consumer, step: int, future) -> None:
    text = None if future.cancelled() else future.result()
    if text is not None:
        consumer.content_ready(step, text)


def forget_contents(group_session_id: int) -> None:
    """Build the contents of this group session again (tests; an experiment edited live)."""
    for cache in _contents.values():
        for key in [k for k in cache if k[0] == group_session_id]:
            cache.pop(key, None)


class Reports:
    """Onsets, locations and jsPsych errors of one process's participant sockets, written
    per group session at most every ``FLUSH_SECONDS``."""

    def __init__(self, loop):
        self.loop = loop
        self.pending: dict[int, tuple[list, dict, list]] = {}
        self.flushing: dict[int, asyncio.Task] = {}

    @classmethod
    def get(cls) -> Reports:
        loop = asyncio.get_running_loop()
        reports = _reports.get(loop)
        if reports is None:
            reports = _reports[loop] = cls(loop)
        return reports

    def add(self, group_session_id: int, pseudonym: str, message) -> None:
        onsets, locations, errors = self.pending.setdefault(group_session_id, ([], {}, []))
        if message.type == "onset":
            onsets.append({"participant": pseudonym, "step": message.step, "at": message.at,
                           "late_ms": message.late_ms, "ready_at": message.ready_at,
                           "rtt_ms": message.rtt_ms, "frame": message.frame})  # fmt: skip
        elif message.type == "location":
            locations[pseudonym] = message.form
        elif message.type == "client_error":
            errors.append({"participant": pseudonym, "step": message.step, "message": message.message})
        if group_session_id not in self.flushing:
            self.flushing[group_session_id] = self.loop.create_task(self._flush_later(group_session_id))

    async def _flush_later(self, group_session_id: int) -> None:
        try:
            await asyncio.sleep(FLUSH_SECONDS)
            while group_session_id in self.pending:
                onsets, locations, errors = self.pending.pop(group_session_id)
                try:
                    await database_sync_to_async(group().record_reports)(
                        group_session=group_session_id, onsets=onsets, locations=locations, errors=errors
                    )
                except Exception:
                    logger.exception("live-page reports of group session %s not recorded", group_session_id)
                await asyncio.sleep(FLUSH_SECONDS)
        finally:
            self.flushing.pop(group_session_id, None)

    async def drain(self) -> None:
        """Write what is pending now (tests)."""
        while self.flushing:
            await asyncio.gather(*list(self.flushing.values()), return_exceptions=True)
