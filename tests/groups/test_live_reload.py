"""A reload of the live page (groups/live_page.py): served from a shell rendered once per
step, with no group-session lock, no write and one statement (PostgreSQL; three to render
a shell, and on SQLite), and never stale: a new step, an answered step, an edited
experiment, form or question, a kicked participant and a finished loop each show what the
general path would."""

# ruff: noqa: F811 - the fixtures of tests/groups/test_live.py, imported, are this module's tests' arguments
from __future__ import annotations

import json
import re

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from groups import live_page, services
from runner.models import DataFormat, ExperimentXForm, Form, FormXQuestion, Question
from tests.groups.test_live import answer, count_locks, experiment, group  # noqa: F401  (fixtures)
from tests.runner.builders import current

pytestmark = pytest.mark.django_db
WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE)", re.I)


@pytest.fixture(autouse=True)
def _fresh_shells():
    live_page.forget()
    yield
    live_page.forget()


def initial(html: str) -> dict:
    return json.loads(re.search(r'id="live-initial"[^>]*>(.*?)</script>', html, re.S).group(1))


def reload(client, session) -> str:
    response = client.get(f"/run/{session.experiment_id}/")
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


def in_the_loop(group, staff):
    """A participant who entered the group part (its first GET) and answered step 0 on the
    live page; the group is at step 1: the run's visit 2 was never served by a GET."""
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    reload(client, session)  # the navigation into the group part
    assert answer(client, session, step=0).json()["stored"]
    services.group_session_advance(group_session=group.gs, step=0, by=staff)
    return client, session


def statements_of_a_reload() -> int:
    """PostgreSQL: one (the run with the definition's fingerprints), two more to render a
    shell; elsewhere three (the run, the forms, the current form's questions) each time."""
    return 1 if connection.vendor == "postgresql" else 3


def test_a_reload_takes_no_lock_writes_nothing_and_reads_in_one_statement(group, staff, count_locks):
    client, session = in_the_loop(group, staff)
    assert not current(session)["served_at"]
    for expected in (3, statements_of_a_reload()):  # the first renders the shell, the second reuses it
        count_locks.clear()
        with CaptureQueriesContext(connection) as queries:
            html = reload(client, session)
        sql = [q["sql"] for q in queries.captured_queries]
        assert count_locks == []
        assert [s for s in sql if WRITES.match(s)] == [] and "FOR UPDATE" not in " ".join(sql).upper()
        assert len(sql) == expected, sql
        assert initial(html)["step"] == 1 and 'name="q-warm"' in html
    assert not current(session)["served_at"]  # (its onset, reported by the page, says when it was shown)


def test_each_participant_gets_its_own_nonce_and_csrf_token_and_can_answer(group, staff):
    first, second = group(), group()
    services.group_session_start(group_session=group.gs, by=staff)
    for client, session in (first, second):
        reload(client, session)  # the entry (general path)
    htmls = [reload(client, session) for client, session in (first, second)]  # one shell, twice
    for html, (_, session) in zip(htmls, (first, second), strict=True):
        nonce = current(session)["nonce"]
        assert initial(html)["visit"]["nonce"] == nonce and f'name="_nonce" value="{nonce}"' in html
    tokens = [re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', h).group(1) for h in htmls]
    assert tokens[0] != tokens[1]
    client, session = first
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    data = {"_order": 1, "_visit": 1, "_nonce": current(session)["nonce"], "q-_group_step": 0, "q-warm": "No",
            "csrfmiddlewaretoken": tokens[0]}  # fmt: skip
    reply = strict.post(f"/group/live/{session.experiment_id}/answer/", data)
    assert reply.status_code == 200 and reply.json()["stored"], reply.content[:300]


def test_a_new_step_shows_its_own_content_and_an_answered_step_is_not_shown_again(group, staff):
    client, session = in_the_loop(group, staff)
    html = reload(client, session)
    assert initial(html)["content"]["shared_params"]["step"] == 1 and 'data-step="1"' in html
    assert answer(client, session, step=1).json()["next"] == "leave"  # the last round of the loop
    html = reload(client, session)
    assert "live-initial" not in html and 'name="q-warm"' not in html  # the loop is over: the end page


def test_an_answered_step_shows_the_waiting_screen(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    assert 'name="q-warm"' in reload(client, session)
    assert answer(client, session, step=0).json()["stored"]
    with CaptureQueriesContext(connection) as queries:
        html = reload(client, session)
    assert len(queries.captured_queries) == 3  # the short path (a new shell), though visit 2 was never served by a GET
    assert initial(html)["mode"] == "waiting" and 'name="q-warm"' not in html


def test_an_edited_experiment_is_never_shown_stale(group, staff):
    client, session = in_the_loop(group, staff)
    assert "Next</button>" in reload(client, session)
    Question.objects.filter(key="warm").update(text="How warm is the room?")  # no signal, no save()
    ExperimentXForm.objects.filter(experiment_id=session.experiment_id, order=1).update(continue_button_text="Go on")
    html = reload(client, session)
    assert "How warm is the room?" in html and "Go on</button>" in html


def test_a_kicked_participant_is_not_shown_the_step(group, staff):
    client, session = in_the_loop(group, staff)
    assert 'name="q-warm"' in reload(client, session)
    pseudonym = session.group_membership.pseudonym
    services.group_session_kick(group_session=group.gs, participant=pseudonym, by=staff)
    html = reload(client, session)
    assert 'name="q-warm"' not in html and "live-initial" not in html


def test_a_loop_the_experimenter_exited_is_left_on_reload(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    reload(client, session)
    assert answer(client, session, step=0).json()["stored"]
    assert initial(reload(client, session))["mode"] == "waiting"  # a shell of the waiting screen
    services.group_session_exit_loop(group_session=group.gs, by=staff)
    html = reload(client, session)
    assert "live-initial" not in html and 'name="q-warm"' not in html  # the end page
    assert current(session)["order"] == 2  # on the end form


def test_a_message_to_show_takes_the_general_path(group, staff):
    from runner.views.run import STALE_MESSAGE

    client, session = in_the_loop(group, staff)
    reload(client, session)
    stale = {"_order": 1, "_visit": 1, "_nonce": "long-gone", "q-_group_step": 0, "q-warm": "Yes"}
    response = client.post(f"/run/{session.experiment_id}/", stale, follow=True)
    assert STALE_MESSAGE.replace("'", "&#x27;") in response.content.decode()
    assert 'name="q-warm"' in response.content.decode()  # and still the step


def test_a_question_its_data_format_or_its_form_edited_between_two_reloads_is_a_new_shell(group, staff):
    client, session = in_the_loop(group, staff)
    reload(client, session)
    with CaptureQueriesContext(connection) as queries:
        assert 'value="Maybe"' not in reload(client, session)
    assert len(queries.captured_queries) == statements_of_a_reload()  # the shell, reused
    question = Question.objects.get(key="warm")
    DataFormat.objects.filter(pk=question.data_format_id).update(choices=["Yes", "No", "Maybe"])
    assert 'value="Maybe"' in reload(client, session)
    Question.objects.filter(pk=question.pk).update(text="How warm now?")
    assert "How warm now?" in reload(client, session)
    form_id = FormXQuestion.objects.get(question=question).form_id
    Form.objects.filter(pk=form_id).update(title="The room")
    assert initial(reload(client, session))["content"]["title"] == "The room"


def test_a_reload_hands_its_connection_back_after_its_reads_but_never_inside_a_transaction(group, staff,
                                                                                            monkeypatch):  # fmt: skip
    """A step's reloads come together: each returns its pooled connection once it has read,
    not at the end of the request (``live_page._release_connection``)."""
    client, session = in_the_loop(group, staff)
    reload(client, session)  # the shell rendered
    closed, wrapper = [], connections["default"]  # (not the proxy: its attributes are the wrapper's)
    with CaptureQueriesContext(connection) as queries:
        monkeypatch.setattr(wrapper, "close", lambda: closed.append(len(queries.captured_queries)))
        reload(client, session)
        assert closed == []  # inside this test's transaction: never
        monkeypatch.setattr(wrapper, "in_atomic_block", False)  # as a request outside one is
        html = reload(client, session)
        monkeypatch.undo()
    assert closed == [len(queries.captured_queries)]  # after the last statement the reload made
    assert initial(html)["step"] == 1
