"""A step's pushed content is built from rows read with the lock of the change that started
it (groups/services.py ``_apply``, ``live.send_content_reads``): after the commit nothing is
read for it, and it is the content a read after the commit gives, shared parameters and
all. A change that starts no step reads nothing more."""

# ruff: noqa: F811 - the fixtures of tests/groups/test_live.py, imported, are this module's tests' arguments
from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groups import live, live_content, live_page, services, store
from tests.groups.test_live import answer, experiment, group  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

CONTENT_READ = 'FROM "groups_membership" t0 INNER JOIN "runner_session" t1'  # (groups.live_content: LIMIT 4)


def content_reads(queries) -> list[str]:
    return [q["sql"] for q in queries if CONTENT_READ in q["sql"] and "LIMIT 4" in q["sql"]]


@pytest.fixture(autouse=True)
def _fresh():
    """No lead samples, and no group session of an earlier test (an id SQLite hands out
    again) noted as one whose pages reload (``live_page.warm`` would read for it)."""
    live.forget_samples()
    live_page.forget()
    yield
    live.forget_samples()
    live_page.forget()


def advance_from_step_0(group, staff, capture_on_commit) -> tuple[list, list]:
    """One page answers step 0 and the experimenter advances: (the change's statements,
    those of its on-commit callbacks, run after it)."""
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    assert answer(client, session, step=0).json()["stored"]
    with capture_on_commit(execute=False) as published:
        with CaptureQueriesContext(connection) as in_change:
            services.group_session_advance(group_session=group.gs, step=0, by=staff)
    with CaptureQueriesContext(connection) as after_commit:
        for callback in published:
            callback()
    return in_change.captured_queries, after_commit.captured_queries


def test_the_content_of_a_new_step_is_built_from_the_rows_read_with_the_lock(
    group, staff, django_capture_on_commit_callbacks
):
    in_change, after_commit = advance_from_step_0(group, staff, django_capture_on_commit_callbacks)
    assert len(content_reads(in_change)) == 1  # with the lock
    assert content_reads(after_commit) == []  # nothing read between the commit and the pages
    pushed = json.loads(live_content.built_text(group.gs.pk, 1))
    group.gs.refresh_from_db()
    assert pushed["step"] == 1 and pushed["shared_params"] == group.gs.shared_params == {"color": "green", "step": 1}
    assert pushed == live_content.group_content(group.gs.pk, 1)  # what a read after the commit builds
    assert 'name="q-warm"' in pushed["html"]


def test_a_change_that_starts_no_step_reads_no_content(group, staff):
    group()
    services.group_session_start(group_session=group.gs, by=staff)
    with CaptureQueriesContext(connection) as queries:
        services.group_session_pause(group_session=group.gs, by=staff)
    assert content_reads(queries.captured_queries) == []


def test_a_refused_advance_changes_nothing_and_publishes_nothing(group, staff, django_capture_on_commit_callbacks):
    group()
    services.group_session_start(group_session=group.gs, by=staff)
    before = store.snapshot(group.gs.pk)
    with django_capture_on_commit_callbacks(execute=True) as published:
        with pytest.raises(services.GroupError):
            services.group_session_advance(group_session=group.gs, step=5, by=staff)  # a stale step
    assert published == [] and store.snapshot(group.gs.pk)["version"] == before["version"]
