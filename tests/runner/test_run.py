"""The run page: resume, Back-button replay, double submit, skipping ahead, timing."""

import pytest

from runner.models import Response

from .builders import build_experiment, current, start, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment():
    return build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "two", "questions": [{"key": "again"}]},
            {"name": "end", "handler": "form_end_session"},
        ]
    )


def test_reload_resumes_at_the_current_form(client, experiment):
    session = start(client, experiment)
    assert b'data-question="likes"' in client.get(f"/run/{experiment.pk}/").content
    assert submit(client, session, {"likes": "Yes"}).status_code == 302
    for _ in range(2):  # reloads keep showing form two, same visit and nonce
        body = client.get(f"/run/{experiment.pk}/").content.decode()
        assert 'data-question="again"' in body and "Page 2 of 3" in body
    assert current(session)["order"] == 2


def test_post_redirect_get(client, experiment):
    session = start(client, experiment)
    response = submit(client, session, {"likes": "No"})
    assert response.status_code == 302 and response["Location"] == f"/run/{experiment.pk}/"


def test_back_button_replay_is_refused_and_stores_nothing(client, experiment):
    session = start(client, experiment)
    old = current(session)
    submit(client, session, {"likes": "Yes"})
    submit(client, session, {"again": "Yes"})
    before = list(Response.objects.values_list("item", "value"))
    # The participant pressed Back twice and re-sends form one with a different answer.
    response = submit(client, session, {"likes": "No"}, ident={**old, "nonce": "forged"})
    assert response.status_code == 302
    assert list(Response.objects.values_list("item", "value")) == before
    page = client.get(f"/run/{experiment.pk}/")
    assert b"already been sent" in page.content


def test_double_submit_stores_once(client, experiment):
    session = start(client, experiment)
    ident = current(session)
    first = submit(client, session, {"likes": "Yes"}, ident=ident)
    second = submit(client, session, {"likes": "No"}, ident=ident)
    assert first.status_code == second.status_code == 302
    rows = Response.objects.filter(session=session, item="likes")
    assert [(r.value, r.visit) for r in rows] == [("Yes", 1)]
    assert current(session)["order"] == 2
    assert b"already been sent" not in client.get(f"/run/{experiment.pk}/").content  # silent for a double click


def test_urls_cannot_skip_ahead(client, experiment):
    session = start(client, experiment)
    cur = current(session)
    response = submit(client, session, {"again": "Yes"}, ident={**cur, "order": 2})
    assert response.status_code == 302
    assert not Response.objects.exists()
    assert current(session)["order"] == 1


def test_invalid_answers_rerender_with_errors_and_store_nothing(client, experiment):
    session = start(client, experiment)
    response = submit(client, session, {})
    assert response.status_code == 200
    assert b"This field is required" in response.content
    assert not Response.objects.exists()
    assert current(session)["order"] == 1


def test_timing_and_time_zone_are_recorded(client, experiment):
    session = start(client, experiment)
    client.get(f"/run/{experiment.pk}/")
    served = current(session)["served_at"]
    submit(client, session, {"likes": "Yes"}, _client_ms="1700000000123")
    row = Response.objects.get(item="likes")
    assert row.served_at.isoformat() == served
    assert row.submitted_at >= row.served_at
    assert row.client_time_ms == 1700000000123
    session.refresh_from_db()
    assert session.timezone == "Europe/Berlin" and session.clock_offset_ms is not None


def test_bad_time_zone_is_ignored(client, experiment):
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"}, _tz="Mars/Olympus")
    session.refresh_from_db()
    assert session.timezone == ""


def test_end_page_ends_session(client, experiment):
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"})
    submit(client, session, {"again": "No"})
    session.refresh_from_db()
    assert session.end is not None
    body = client.get(f"/run/{experiment.pk}/").content.decode()
    assert "data-end-page" in body and "Page 3 of 3" in body


def test_experiment_without_end_form_finishes_with_thanks(client):
    experiment = build_experiment([{"questions": [{"key": "likes"}]}])
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"})
    session.refresh_from_db()
    assert session.end is not None and session.state["finished"]
    assert b"All done" in client.get(f"/run/{experiment.pk}/").content
    assert submit(client, session, {"likes": "No"}, ident={"order": 1, "visit": 1, "nonce": "x"}).status_code == 302
    assert Response.objects.count() == 1
