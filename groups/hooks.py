"""Group hooks (SPEC section 5) and the ``group`` object they receive.

An experiment's ``group_flow`` names a module; every hook in it is optional:

- ``on_join(group, participant)`` when a participant attaches;
- ``on_advance(group) -> dict`` when a step begins (the start, and each advance):
  the shared trial parameters of the new step, stored with the step;
- ``on_response(group, participant, answers)`` when a participant answers a step;
- ``on_all_responded(group)`` when the last participant still in the group answered;
- ``on_end(group)`` when the session ends or is aborted (``group.phase`` says which).

``on_advance`` failing refuses the step change (``GroupError`` code ``hook_failed``);
the other hooks are logged and never cost a participant an answer. A failing hook
leaves nothing of what it wrote (its savepoint and its context writes are undone).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.db import transaction

from runner.callbacks import CallbackError, resolve_module

from .context import merge, value_problem
from .state import GroupError, GroupState
from .store import load_state

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


def _copy(value):
    return json.loads(json.dumps(value))


def _no_writer(**_):
    raise RuntimeError("groups.hooks: no context writer registered (GroupsConfig.ready)")


_write_context = _no_writer


def use_context_writer(write) -> None:
    """Register the service that writes a context patch outside a change
    (``services.group_session_set_context``; from ``GroupsConfig.ready()``, so hooks
    need not import the services that call them)."""
    global _write_context
    _write_context = write


class GroupContext:
    """``group.context``: ``ctx["k"]``, ``ctx.get("k")``, ``dict(ctx)`` read; ``ctx["k"] = v``,
    ``del ctx["k"]`` and ``ctx.patch({...})`` write (``None`` in a patch deletes the key).
    A read returns a copy: change a value by assigning it.

    ``locked`` (the hooks' group, under the group session's lock): reads and writes go
    to a working copy of the locked row's ``GroupSession.context``, which the services
    save in the transaction of the change (``dirty``), so a hook's writes are as durable
    as the answer or step change that ran it and need no context store. Otherwise (a
    callback's ``run.group``) a write is an experimenter-less ``set_context``: it locks
    the group session and is saved at once. Every write goes through
    ``groups.context.merge``: a value the context cannot hold raises ``GroupError``
    ``bad_patch`` naming the key, and nothing of that patch is kept."""

    def __init__(self, group_session, *, locked: bool = False):
        self._gs = group_session
        self._locked = locked
        self._value: dict | None = None
        self.dirty = False  # written through this object: the services save it

    @property
    def value(self) -> dict:
        """The working copy itself (not a copy): for the services that save it."""
        if self._value is None:
            self._value = dict(self._gs.context or {})
        return self._value

    def snapshot(self) -> dict:
        return _copy(self.value)

    def patch(self, patch: dict) -> dict:
        if not self._locked:
            self._value = _write_context(group_session=self._gs.pk, patch=patch)
            return _copy(self._value)
        self._value = merge(self.value, patch)
        self.dirty = True
        return _copy(self._value)

    @contextmanager
    def undo_on_error(self):
        """What a failing hook wrote is dropped with it (its savepoint is rolled back)."""
        kept = (self._value, self.dirty)
        try:
            yield
        except BaseException:
            self._value, self.dirty = kept
            raise

    def get(self, key: str, default: Any = None) -> Any:
        return _copy(self.value[key]) if key in self.value else default

    def __getitem__(self, key: str) -> Any:
        return _copy(self.value[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.patch({key: value})

    def __delitem__(self, key: str) -> None:
        self.patch({key: None})

    def __contains__(self, key: str) -> bool:
        return key in self.value

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.value))

    def __len__(self) -> int:
        return len(self.value)

    def keys(self):
        return self.snapshot().keys()

    def items(self):
        return self.snapshot().items()

    def __repr__(self):
        return f"GroupContext({self.value!r})"


class Group:
    """What hooks get as ``group``.

    Attributes: ``id`` (group session id), ``step``, ``phase``, ``context``
    (``GroupContext``), ``participants`` (list of ``ParticipantInfo``, kicked ones
    included with status ``kicked``), ``shared_params`` (the current step's shared
    trial parameters), ``responses`` (this group session's answers so
    far: dicts with ``participant``, ``step``, ``item``, ``value``), ``params`` (the
    experiment's params), ``experiment`` (its slug), ``size`` (expected size or None).
    """

    def __init__(self, group_session, state: GroupState | None, session_ids: dict[str, int] | None = None, *,
                 locked: bool = False):  # fmt: skip
        """``locked``: made under the group session's lock (the hooks'), see ``GroupContext``.
        ``participants`` is built when a hook first reads it (most changes run no hook
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
        self.context = GroupContext(group_session, locked=locked)

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
        with transaction.atomic(), group.context.undo_on_error():
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
    problem = value_problem(params, "on_advance's shared parameters")  # stored with the step
    if problem:
        raise GroupError(f"The experiment's on_advance hook failed: {problem}.", code="hook_failed")
    return params


def call_quietly(name: str, experiment, group: Group, *args) -> None:
    """Run an optional hook; log (never raise) its errors, inside its own savepoint: a
    failing hook leaves nothing, neither rows nor context writes (a refused context value
    is logged as ``hook_failed`` with the key it names)."""
    fn = getattr(hook_module(experiment), name, None)
    if fn is None:
        return
    try:
        with transaction.atomic(), group.context.undo_on_error():
            fn(group, *args)
    except GroupError as exc:
        logger.error("%s hook of %s failed (hook_failed): %s: nothing it wrote is kept", name, experiment.slug,
                     exc.message)  # fmt: skip
        _log_failure(group, name, exc.message)
    except Exception as exc:
        logger.exception("%s hook of %s failed (hook_failed): nothing it wrote is kept", name, experiment.slug)
        _log_failure(group, name, type(exc).__name__)  # its text may hold answers: the server log has it


def _log_failure(group: Group, name: str, error: str) -> None:
    """A ``hook_failed`` row in the step log, so the console shows it (not only the server
    log); ``error`` names the key for a refused context value, else the exception's type."""
    from .models import StepLog

    at_ms = int(time.time() * 1000)
    StepLog.objects.create(group_session_id=group.id, step=group.step, action="hook_failed",
                           at=datetime.fromtimestamp(at_ms / 1000, tz=UTC), at_ms=at_ms,
                           data={"hook": name, "error": error[:500]})  # fmt: skip
