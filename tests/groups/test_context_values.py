"""Issue 14, cause 2: a value the context cannot hold (NUL, a lone surrogate, NaN,
Infinity, too deep, too big) is refused before anything is written, by every writer:
the experimenter's ``set_context`` (``bad_patch``, over the socket as well) and the
hooks (``hook_failed`` naming the key; what the hook wrote is dropped). The socket path
is in tests/realtime/test_context_values.py. On PostgreSQL
such a value used to reach Redis, fail the checkpoint with ``internal`` and block every
later advance."""

from __future__ import annotations

import logging

import pytest

from groups import answers, selectors, services
from groups.context import get_store, merge, value_problem
from groups.models import GroupSession, StepLog
from groups.state import GroupError
from runner.models import Ticket
from tests.factories import ExperimentFactory, SessionFactory

from . import context_flow

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.redis]

DEEP: list = []
for _ in range(40):
    DEEP = [DEEP]

BAD_PATCHES = {
    "NUL in a key": {"a\x00b": 1},
    "NUL in a value": {"k": "a\x00b"},
    "NUL in a nested key": {"k": {"x": [{"y\x00": 1}]}},
    "lone surrogate in a key": {"\ud800": 1},
    "lone surrogate in a value": {"k": ["ok", "\udc00"]},
    "NaN": {"k": float("nan")},
    "Infinity": {"k": float("inf")},
    "-Infinity nested": {"k": {"v": [1, float("-inf")]}},
    "too deep": {"k": DEEP},
    "not JSON": {"k": {1, 2}},
    "non-string nested key": {"k": {1: "x"}},
}


@pytest.fixture
def bad_flow():
    context_flow.BAD.clear()
    yield context_flow
    context_flow.BAD.clear()


def _stores(gs) -> tuple[dict, dict | None]:
    """The database's context and the context store's copy (after a snapshot synced it)."""
    selectors.snapshot(gs.pk)
    return GroupSession.objects.get(pk=gs.pk).context, get_store().get(gs.pk)


@pytest.mark.parametrize("patch", BAD_PATCHES.values(), ids=BAD_PATCHES.keys())
def test_set_context_refuses_what_the_context_cannot_hold(gs, join, staff, patch):
    join()
    services.group_session_set_context(group_session=gs, patch={"kept": [1, 2]}, by=staff)
    services.group_session_start(group_session=gs, by=staff)
    before, logged = _stores(gs), StepLog.objects.filter(group_session=gs).count()
    assert before[0] == before[1] and before[0]["kept"] == [1, 2]
    with pytest.raises(GroupError) as info:
        services.group_session_set_context(group_session=gs, patch=patch, by=staff)
    assert info.value.code == "bad_patch"
    assert "context key" in info.value.message.lower()
    assert _stores(gs) == before  # nothing written: neither the database nor Redis
    assert StepLog.objects.filter(group_session=gs).count() == logged
    # The session is not blocked: it advances, takes good patches, and ends.
    services.group_session_advance(group_session=gs, step=0, by=staff)
    services.group_session_set_context(group_session=gs, patch={"after": "ok"}, by=staff)
    services.group_session_end(group_session=gs, by=staff)
    db, copy = _stores(gs)
    assert db == copy and db["after"] == "ok" and db["kept"] == [1, 2]


def test_refusal_names_the_key_and_what_is_wrong(settings):
    cases = [
        ({"score\x00": 1}, '"score\\u0000"', "NUL"),
        ({"ratings": [1, float("nan")]}, 'context key "ratings"[1]', "NaN"),
        ({"who": {"name": "\ud800"}}, 'context key "who"["name"]', "lone surrogate"),
    ]
    for patch, where, what in cases:
        with pytest.raises(GroupError) as info:
            merge({}, patch)
        assert where in info.value.message and what in info.value.message, info.value.message
    settings.GROUP_CONTEXT_MAX_BYTES = 100
    with pytest.raises(GroupError) as info:
        merge({"a": "x" * 50}, {"big": "y" * 60})
    assert '"big"' in info.value.message and "GROUP_CONTEXT_MAX_BYTES" in info.value.message
    assert value_problem({"ok": [1, 2.5, "é", None, True, {"n": {}}]}, "v") is None


@pytest.fixture
def bad_gs(staff, bad_flow):
    experiment = ExperimentFactory(is_group=True, group_size=1, group_flow="tests.groups.context_flow")
    gs = services.start_group_session(experiment=experiment, size=1, experimenter=staff)

    def join():
        ticket = Ticket.objects.get(pk=gs.ticket_id)
        session = SessionFactory(experiment=experiment, ticket=ticket)
        services.attach_participant(session=session, ticket=ticket)
        return session

    return gs, join


def test_on_advance_writing_a_bad_value_refuses_the_step_and_keeps_nothing(bad_gs, staff, bad_flow):
    gs, join = bad_gs
    join()
    before = _stores(gs)
    bad_flow.BAD["on_advance"] = float("nan")
    with pytest.raises(GroupError) as info:
        services.group_session_start(group_session=gs, by=staff)
    assert info.value.code == "hook_failed" and '"bad"' in info.value.message and "NaN" in info.value.message
    assert _stores(gs) == before and "on_advance_ran" not in before[0]
    assert GroupSession.objects.get(pk=gs.pk).phase == "waiting"
    bad_flow.BAD.clear()
    services.group_session_start(group_session=gs, by=staff)  # not blocked
    assert _stores(gs)[0]["on_advance_ran"] is True


def test_on_advance_returning_a_bad_parameter_is_hook_failed(bad_gs, staff, bad_flow, monkeypatch):
    gs, join = bad_gs
    join()
    monkeypatch.setattr(context_flow, "on_advance", lambda group: {"colour": "red\x00"})
    with pytest.raises(GroupError) as info:
        services.group_session_start(group_session=gs, by=staff)
    assert info.value.code == "hook_failed" and '"colour"' in info.value.message
    assert GroupSession.objects.get(pk=gs.pk).phase == "waiting"


@pytest.mark.parametrize("hook", ["on_join", "on_response", "on_all_responded"])
def test_quiet_hooks_writing_a_bad_value_keep_nothing_and_say_which_key(bad_gs, staff, bad_flow, hook, caplog):
    """The answer (or the join) is kept; the hook's writes, the good one included, are
    not; the log says hook_failed and names the key (never the value)."""
    gs, join = bad_gs
    bad_flow.BAD[hook] = "secret\x00value"
    with caplog.at_level(logging.ERROR, logger="groups.hooks"):
        session = join()
        services.group_session_start(group_session=gs, by=staff)
        recorded = answers.record_response(session=session, step=0, answers={"x": 1})
    assert recorded.step == 0
    db, copy = _stores(gs)
    assert db == copy and f"{hook}_ran" not in db and "bad" not in db
    assert {"on_join_ran", "on_response_ran", "on_all_responded_ran"} - {f"{hook}_ran"} <= set(db)
    failures = [r.getMessage() for r in caplog.records if "hook_failed" in r.getMessage()]
    assert len(failures) == 1 and hook in failures[0] and '"bad"' in failures[0]
    assert "secret" not in caplog.text
    # and the console's step log shows it
    row = StepLog.objects.get(group_session=gs, action="hook_failed")
    assert row.data["hook"] == hook and '"bad"' in row.data["error"] and "secret" not in row.data["error"]
    assert selectors.snapshot(gs.pk)["step_log"][0]["action"] in ("hook_failed", "started")


def test_a_failing_hook_leaves_nothing_it_wrote(bad_gs, staff, bad_flow, monkeypatch):
    """Not only refused values: any exception drops what that hook wrote before it."""
    gs, join = bad_gs
    session = join()
    services.group_session_start(group_session=gs, by=staff)

    def on_response(group, participant, answers):
        group.context["half"] = 1
        raise RuntimeError("hook bug")

    monkeypatch.setattr(context_flow, "on_response", on_response)
    answers.record_response(session=session, step=0, answers={})
    db, copy = _stores(gs)
    assert "half" not in db and db == copy and db["on_all_responded_ran"] is True
    row = StepLog.objects.get(group_session=gs, action="hook_failed")
    assert row.data == {"hook": "on_response", "error": "RuntimeError"} and row.step == 0


def test_a_callback_writing_run_group_context_takes_the_lock_and_the_same_rule(gs, join, staff):
    """``run.group.context`` outside a hook (a stimulus or condition script) writes as an
    experimenter-less ``set_context``: under the lock, saved at once, logged; a bad value
    is refused there too."""
    session, _ = join()
    group = selectors.run_group(session=session)
    group.context["from_callback"] = [1, 2]
    assert group.context["from_callback"] == [1, 2]
    assert GroupSession.objects.get(pk=gs.pk).context["from_callback"] == [1, 2]
    assert StepLog.objects.filter(group_session=gs, action="context_set", by=None).count() == 1
    with pytest.raises(GroupError) as info:
        group.context["bad"] = float("nan")
    assert info.value.code == "bad_patch" and '"bad"' in info.value.message
    assert "bad" not in GroupSession.objects.get(pk=gs.pk).context
