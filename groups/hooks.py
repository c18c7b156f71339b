"""Group hooks (SPEC section 5) and the ``group`` object they receive.

An experiment's ``group_flow`` names a module; every hook in it is optional:

- ``on_join(group, participant)`` when a participant attaches;
- ``on_advance(group) -> dict`` when a step begins (the start, and each advance):
  the shared trial parameters of the new step, stored with the step;
- ``on_response(group, participant, answers)`` when a participant answers a step;
- ``on_all_responded(group)`` when the last participant still in the group answered;
- ``on_end(group)`` when the session ends or is aborted (``group.phase`` says which).

``on_advance`` failing refuses the step change (``GroupError`` code ``hook_failed``);
the other hooks are logged and never cost a participant an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db import transaction

from runner.callbacks import CallbackError, resolve_module

from .context import get_store
from .state import GroupError, GroupState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParticipantInfo:
    """A participant as hooks see it: a pseudonym, never a cookie or ticket."""

    id: str
    session_id: int
    status: str
    responded_step: int | None
    connected: bool

    @property
    def pseudonym(self) -> str:
        return self.id


def load_context(group_session) -> dict:
    """The live context; restored from the database checkpoint if the store lost it."""
    store = get_store()
    value = store.get(group_session.pk)
    if value is None:
        value = store.restore(group_session.pk, group_session.context or {})
    return value


class GroupContext:
    """``group.context``: reads and patches go to the context store (atomic per patch).

    ``ctx["k"]``, ``ctx.get("k")``, ``dict(ctx)`` read; ``ctx["k"] = v``, ``del ctx["k"]``
    and ``ctx.patch({...})`` write (``None`` in a patch deletes the key).
    """

    def __init__(self, group_session):
        self._gs = group_session
        self.dirty = False  # written through this object: the services checkpoint it

    def snapshot(self) -> dict:
        return load_context(self._gs)

    def patch(self, patch: dict) -> dict:
        load_context(self._gs)  # make sure a lost context is restored before merging
        self.dirty = True
        return get_store().patch(self._gs.pk, patch)

    def get(self, key: str, default: Any = None) -> Any:
        return self.snapshot().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.snapshot()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.patch({key: value})

    def __delitem__(self, key: str) -> None:
        self.patch({key: None})

    def __contains__(self, key: str) -> bool:
        return key in self.snapshot()

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def keys(self):
        return self.snapshot().keys()

    def items(self):
        return self.snapshot().items()

    def __repr__(self):
        return f"GroupContext({self.snapshot()!r})"


class Group:
    """What hooks get as ``group``.

    Attributes: ``id`` (group session id), ``step``, ``phase``, ``context``
    (``GroupContext``), ``participants`` (list of ``ParticipantInfo``, kicked ones
    included with status ``kicked``), ``shared_params`` (the current step's shared
    trial parameters), ``responses`` (this group session's answers so
    far: dicts with ``participant``, ``step``, ``item``, ``value``), ``params`` (the
    experiment's params), ``experiment`` (its slug), ``size`` (expected size or None).
    """

    def __init__(self, group_session, state: GroupState | None, session_ids: dict[str, int] | None = None):
        """``participants`` is built when a hook first reads it (most changes run no hook
        that does, and at N = 1000 the list costs milliseconds under the group session's
        lock): from ``state``, or with ``state=None`` read from the database (the answer
        path, which does not load every membership under the lock)."""
        self._gs = group_session
        self._state, self._session_ids = state, session_ids or {}
        if state is None:
            self.step: int = group_session.step
            self.phase: str = group_session.phase
        else:
            self.step = state.step
            self.phase = state.phase
        self.id: int = group_session.pk
        self.params: dict = dict(group_session.experiment.params or {})
        self.experiment: str = group_session.experiment.slug
        self.size: int | None = group_session.expected_size
        self.shared_params: dict = dict(group_session.shared_params or {})
        self.context = GroupContext(group_session)

    @staticmethod
    def _participants_of(state: GroupState, session_ids: dict[str, int]) -> list[ParticipantInfo]:
        return [
            ParticipantInfo(pid, session_ids.get(pid, 0), p.status, p.responded_step, p.connected)
            for pid, p in state.participants.items()
        ]

    def __getattr__(self, name: str):
        # Only reached while ``participants`` has not been built yet.
        if name != "participants":
            raise AttributeError(name)
        state, session_ids = self._state, self._session_ids
        if state is None:
            from .selectors import load_state

            state, session_ids = load_state(self._gs)
        self.participants = self._participants_of(state, session_ids)
        return self.participants

    @cached_property
    def responses(self) -> list[dict]:
        from runner.models import Response

        rows = (
            Response.objects.filter(group_session_id=self.id)
            .order_by("step", "id")
            .values_list("session__group_membership__pseudonym", "step", "item", "value")
        )
        return [{"participant": p, "step": s, "item": i, "value": v} for p, s, i, v in rows]

    def __repr__(self):
        return f"<Group {self.id} {self.phase} step={self.step}>"


def hook_module(experiment):
    if not experiment.group_flow:
        return None
    try:
        return resolve_module(experiment.group_flow)
    except CallbackError as exc:
        logger.error("group_flow of %s does not load: %s", experiment.slug, exc)
        return None


def call_advance(group: Group, experiment) -> dict:
    """Run ``on_advance``; return the new step's shared parameters ({} without a hook)."""
    fn = getattr(hook_module(experiment), "on_advance", None)
    if fn is None:
        return {}
    try:
        with transaction.atomic():
            params = fn(group)
    except Exception as exc:
        logger.exception("on_advance of %s failed", experiment.slug)
        raise GroupError(
            f"The experiment's on_advance hook failed: {type(exc).__name__}: {exc}", code="hook_failed"
        ) from exc
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise GroupError("on_advance must return a dict of shared trial parameters.", code="hook_failed")
    return params


def call_quietly(name: str, experiment, *args) -> None:
    """Run an optional hook; log (never raise) its errors, inside its own savepoint."""
    fn = getattr(hook_module(experiment), name, None)
    if fn is None:
        return
    try:
        with transaction.atomic():
            fn(*args)
    except Exception:
        logger.exception("%s hook of %s failed", name, experiment.slug)
