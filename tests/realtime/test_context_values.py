"""Issue 14, cause 2 over the experimenter socket: ``set_context`` with a NUL got
``internal`` on PostgreSQL (Redis had taken it, the checkpoint failed) and every later
``advance`` failed too. Now ``bad_patch`` naming the key, and the session goes on."""

from __future__ import annotations

import pytest

from groups import services
from groups.context import get_store
from groups.models import GroupSession

from .test_consumers import next_of, state_where

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.parametrize("patch", ['{"note": "a\\u0000b"}', '{"a\\u0000": 1}', '{"note": "\\ud800"}',
                                   '{"score": NaN}', '{"score": [Infinity]}'])  # fmt: skip
async def test_set_context_with_a_value_the_database_refuses_is_bad_patch(world, call, patch):
    await call(services.group_session_start, group_session=world.gs, by=world.staff)
    boss = world.experimenter()
    assert (await boss.connect())[0]
    await next_of(boss, "group.state")
    await boss.send_to(text_data=f'{{"type": "set_context", "patch": {patch}}}')
    error = await next_of(boss, "error")
    assert error["code"] in ("bad_patch", "bad_json"), error  # bad_json: a parser that refuses NaN
    await boss.send_json_to({"type": "advance", "step": 0})
    assert (await state_where(boss, lambda s: s["step"] == 1))["context"] == {}
    await boss.disconnect()
    gs = await call(GroupSession.objects.get, pk=world.gs.pk)
    assert gs.step == 1 and gs.context == {}
    assert await call(get_store().get, group_session_id=gs.pk) == {}
