"""Pushed snapshots equal fresh ones (STYLE 7, Zulip's ``verify_action``): after every
service action, the state each socket was sent equals the snapshot built fresh from
the database for that receiver (the experimenter's full state, a participant's view),
and both validate against the protocol schemas."""

from __future__ import annotations

import pytest

from groups import answers, selectors, services, store
from realtime.schemas import ExperimenterState, ParticipantState

from .test_consumers import state_where

pytestmark = pytest.mark.django_db(transaction=True)


class Verifier:
    """An experimenter socket and one participant socket of ``world.gs``, kept in step."""

    def __init__(self, world, call, boss, ann):
        self.world, self.call, self.boss, self.ann = world, call, boss, ann
        self.pseudonym = world.pseudonyms[0]
        self.participant_version = 0
        self.checked = []

    async def fresh(self) -> dict:
        return await self.call(selectors.snapshot, group_session_id=self.world.gs.pk)

    async def pushed_to_boss(self, predicate) -> dict:
        pushed = await state_where(self.boss, predicate)
        fresh = await self.fresh()
        assert pushed == fresh
        ExperimenterState.model_validate(pushed)
        return fresh

    async def pushed_to_ann(self, fresh: dict) -> None:
        """If participants can see the change, ann was sent her view of ``fresh``; she acks it.

        A participant view carries the version it was sent at; changes only the console
        sees (presence, acks) raise ``version`` without a new view, so the view must equal
        the fresh one in everything else, at a version at or above ``participant_version``."""
        if fresh["participant_version"] <= self.participant_version:
            return
        self.participant_version = fresh["participant_version"]
        view = await state_where(self.ann, lambda s: s["version"] >= fresh["participant_version"])
        expected = store.participant_view(fresh, self.pseudonym)
        assert {**view, "version": None} == {**expected, "version": None}
        assert fresh["participant_version"] <= view["version"] <= fresh["version"]
        ParticipantState.model_validate(view)
        await self.ann.send_json_to({"type": "ack", "version": view["version"]})
        acked = await self.pushed_to_boss(lambda s: self._row(s)["acked_version"] >= view["version"])
        assert not self._row(acked)["behind"]

    def _row(self, state):
        return next(p for p in state["participants"] if p["id"] == self.pseudonym)

    async def action(self, name, fn, **kwargs) -> dict:
        """Run one service action, then compare what was pushed with a fresh snapshot."""
        before = await self.fresh()
        await self.call(fn, **kwargs)
        expected = await self.fresh()
        assert expected["version"] > before["version"], f"{name} changed nothing"
        fresh = await self.pushed_to_boss(lambda s: s["version"] >= expected["version"])
        await self.pushed_to_ann(fresh)
        self.checked.append(name)
        return fresh


async def test_every_action_pushes_what_a_fresh_snapshot_shows(world, call):
    staff, (ann_session, bob_session), gs = world.staff, world.sessions, world.gs.pk
    boss, ann = world.experimenter(), world.participant(0)
    await boss.connect()
    v = Verifier(world, call, boss, ann)
    assert await state_where(boss, lambda s: True) == await v.fresh()

    await ann.connect()  # participant_connected: the console sees her online
    fresh = await v.pushed_to_boss(lambda s: v._row(s)["connected"])
    await v.pushed_to_ann(fresh)
    await ann.send_json_to({"type": "ready", "step": 0})
    fresh = await v.pushed_to_boss(lambda s: s["ready"] == 1)
    await v.pushed_to_ann(fresh)

    await v.action("start", services.group_session_start, group_session=gs, by=staff)
    await v.action("location", services.record_location, session=ann_session, form="trial")
    await v.action("respond", answers.record_response, session=ann_session, step=0, answers={"x": 1})
    await v.action("respond", answers.record_response, session=bob_session, step=0, answers={"x": 2})
    moved = await v.action("advance", services.group_session_advance, group_session=gs, step=0, by=staff)
    assert moved["step"] == 1
    await v.action("set_context", services.group_session_set_context, group_session=gs, patch={"round": 2}, by=staff)
    await v.action("pause", services.group_session_pause, group_session=gs, by=staff)
    await v.action("resume", services.group_session_resume, group_session=gs, by=staff)
    await v.action("exit_loop", services.group_session_exit_loop, group_session=gs, by=staff)
    await v.action("finished", services.participant_finished, session=bob_session)
    await v.action("kick", services.group_session_kick, group_session=gs, participant=world.pseudonyms[1], by=staff)
    last = await v.action("end", services.group_session_end, group_session=gs, by=staff)
    assert last["phase"] == "ended" and len(v.checked) == 12
    await ann.disconnect()
    await boss.disconnect()


async def test_pushed_console_state_carries_the_step_log(world, call):
    boss = world.experimenter()
    await boss.connect()
    first = await state_where(boss, lambda s: True)
    assert first["step_log"] == []
    await boss.send_json_to({"type": "start"})
    await state_where(boss, lambda s: s["phase"] == "running")
    await boss.send_json_to({"type": "advance", "step": 0})
    moved = await state_where(boss, lambda s: s["step"] == 1)
    log = moved["step_log"]
    assert [(e["action"], e["step"], e["by"]) for e in log] == [("advanced", 1, "boss"), ("started", 0, "boss")]
    assert log[0]["at_ms"] == moved["server_ms"] >= log[1]["at_ms"]  # newest first, stamped in server ms
    assert moved == await call(selectors.snapshot, group_session_id=world.gs.pk)
    await boss.disconnect()


async def test_participants_never_see_the_step_log(world, call):
    ann = world.participant(0)
    await ann.connect()
    await call(services.group_session_start, group_session=world.gs.pk, by=world.staff)
    view = await state_where(ann, lambda s: s["phase"] == "running")
    assert "step_log" not in view and "context" not in view
    await ann.disconnect()


@pytest.mark.django_db
def test_step_log_is_limited_to_the_latest_entries(world, settings):
    settings.GROUP_CONSOLE_LOG_ENTRIES = 3
    services.group_session_start(group_session=world.gs, by=world.staff)
    for step in range(4):
        services.group_session_advance(group_session=world.gs, step=step, by=world.staff)
    log = selectors.snapshot(world.gs.pk)["step_log"]
    assert [(e["action"], e["step"]) for e in log] == [("advanced", 4), ("advanced", 3), ("advanced", 2)]
