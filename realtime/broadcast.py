"""Publishing group-session changes to the sockets.

``broadcast_state(id)`` builds the whole snapshot once and sends ONE channel-layer
message to the group session's group; each consumer derives the view its receiver
may see. Services call it from ``transaction.on_commit`` so nothing is announced
that was not committed.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .groups import group_session_group

logger = logging.getLogger(__name__)

SNAPSHOT_EVENT = "group.snapshot"


def snapshot_message(group_session_id: int) -> dict:
    from groups.selectors import snapshot

    return {"type": SNAPSHOT_EVENT, "state": snapshot(group_session_id)}


def broadcast_state(group_session_id: int) -> None:
    """Send the current snapshot of ``group_session_id`` to all its sockets.

    Never raises: a broadcast that fails is logged (clients still converge, since
    every later change and every reconnect carries the whole state).
    """
    try:
        message = snapshot_message(group_session_id)
        async_to_sync(get_channel_layer().group_send)(group_session_group(group_session_id), message)
    except Exception:
        logger.exception("broadcast of group session %s failed", group_session_id)
