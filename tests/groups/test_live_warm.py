"""Reload shells warmed and shared (groups/live_page.py): once a process served a reload of a
group session, the shell of each new step is rendered when the step is published, before
any page asks; reloads that come while a shell is being rendered wait for it instead of
reading the rows again; a group whose pages never reload costs nothing."""

# ruff: noqa: F811 - the fixtures of tests/groups/test_live.py, imported, are this module's tests' arguments
from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groups import live_page, services
from tests.groups.test_live import answer, experiment, group  # noqa: F401  (fixtures)
from tests.groups.test_live_reload import initial, reload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_shells():
    live_page.forget()
    yield
    live_page.forget()


def steps_with_a_shell() -> set[int]:
    return {key[1] for key in live_page._shells}


def started(group, staff):
    """A participant on step 0 whose page was served by the general path (the entry)."""
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    reload(client, session)  # the navigation into the group part: the general path, not a reload
    return client, session


def advance(group, staff, step, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the publish (and the warming) run
        services.group_session_advance(group_session=group.gs, step=step, by=staff)


def test_after_a_reload_the_next_steps_shell_is_rendered_when_the_step_is_published(
    group, staff, django_capture_on_commit_callbacks
):
    client, session = started(group, staff)
    reload(client, session)  # a reload of step 0 (the short path): this process warms the group's next steps
    assert steps_with_a_shell() == {0}
    assert answer(client, session, step=0).json()["stored"]
    advance(group, staff, 0, django_capture_on_commit_callbacks)
    assert steps_with_a_shell() == {0, 1}  # before any page asked for step 1
    with CaptureQueriesContext(connection) as queries:
        live_page.warm(group.gs.pk, 1)  # a later state of step 1 (an answer came in)
    assert queries.captured_queries == []  # once per step
    if connection.vendor == "postgresql":
        with CaptureQueriesContext(connection) as queries:
            html = reload(client, session)
        assert len(queries.captured_queries) == 1  # the shell was there: no form or question row read
    else:
        html = reload(client, session)
    assert initial(html)["step"] == 1 and 'name="q-warm"' in html


def test_a_group_whose_pages_do_not_reload_is_not_warmed(group, staff, django_capture_on_commit_callbacks):
    client, session = started(group, staff)
    assert answer(client, session, step=0).json()["stored"]
    advance(group, staff, 0, django_capture_on_commit_callbacks)
    assert steps_with_a_shell() == set()


def test_warming_stops_after_steps_without_a_reload_and_for_another_step(group, staff):
    client, session = started(group, staff)
    reload(client, session)  # noted: step 0
    live_page._shells.clear()
    live_page.warm(group.gs.pk, live_page.WARM_STEPS + 1)  # too many steps since the last reload
    live_page.warm(group.gs.pk, 1)  # the run is on step 0: nothing rendered for a step it is not on
    assert steps_with_a_shell() == set()
    live_page.warm(group.gs.pk, 0)
    assert steps_with_a_shell() == {0}


def test_a_reload_waits_for_the_shell_another_thread_is_rendering():
    key = ("a shell's key",)
    building = live_page._building.setdefault(key, threading.Lock())
    building.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(live_page._built_meanwhile(key)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # waiting for the render, not reading the rows itself
    live_page._shells[key] = ("the page",)
    live_page._building.pop(key)
    building.release()
    waiter.join(5)
    assert got == [("the page",)]
    assert live_page._built_meanwhile(("no shell being rendered",)) is None
