"""The one owner of a group session's state.

Only this package locks a group session, loads its ``GroupState`` (the group session's
row and its memberships), saves a new state and builds the snapshots every receiver
sees. The services (``services``, ``answers``, ``presence``) ask it for a state, call
``state.transition(...)`` and hand the new state back:

    with transaction.atomic():
        gs = store.lock(group_session)
        old, session_ids = store.load_state(gs)
        new, events = sm.transition(old, action, now_ms=store.now_ms())
        fields = store.save(gs, old, new)
        ...
        store.publish_on_commit(gs, new)

- ``load``: ``lock``, ``send_lock``, ``load_state``, ``lock_and_load`` (both in one round
  trip; ``lock_load_and``: and other reads in it), ``state_of``, ``participant_of`` (a
  run that has ended is ``finished``), ``send_answering_members``, ``membership_of``;
- ``save``: ``save``, ``save_console_change``, ``checkpoint_context`` and the two
  batched rules (``raise_acks``: ``Ack``; ``save_answers`` / ``still_answering_query``:
  ``Respond`` and ``all_responded``);
- ``snapshots``: ``snapshot``, ``snapshot_of``, ``participant_view``, ``wire_body``
  (what ``realtime`` sends, per receiver class), ``publish_on_commit``, ``publish_console``.
"""

from .load import (
    load_state,
    lock,
    lock_and_load,
    lock_load_and,
    membership_of,
    now_ms,
    participant_of,
    pk_of,
    send_answering_members,
    send_lock,
    state_of,
)
from .save import (
    checkpoint_context,
    raise_acks,
    save,
    save_answers,
    save_console_change,
    still_answering_query,
)
from .snapshots import (
    SHARED_KEYS,
    get_group_session,
    participant_view,
    publish_console,
    publish_on_commit,
    read_wire_body,
    snapshot,
    snapshot_of,
    step_log,
    wire_body,
)

__all__ = [
    "SHARED_KEYS", "checkpoint_context", "get_group_session", "load_state", "lock", "lock_and_load", "membership_of",
    "lock_load_and", "now_ms",
    "participant_of", "participant_view", "pk_of", "publish_console", "publish_on_commit", "raise_acks",
    "read_wire_body", "save", "save_answers", "save_console_change", "send_answering_members", "send_lock",
    "snapshot", "snapshot_of", "state_of", "step_log", "still_answering_query", "wire_body",
]  # fmt: skip
