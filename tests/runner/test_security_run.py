"""Adversarial input to the participant runner: tampered cookies, forged posts, hostile
jsPsych data, out-of-range values, NUL characters. Each gets a clear answer and changes
nothing (docs/security.md)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from runner.models import Response, Session, Ticket
from runner.run_cookie import cookie_name

from .builders import CB, build_experiment, current, start, submit, ticket

pytestmark = pytest.mark.django_db

SURVEY = [
    {"name": "one", "questions": [{"key": "likes"}]},
    {"name": "two", "questions": [{"key": "again"}]},
    {"name": "end", "handler": "form_end_session"},
]
TRIAL = {"trial_type": "html-keyboard-response", "trial_index": 0, "response": "f", "rt": 412}


@pytest.fixture
def experiment():
    return build_experiment(SURVEY)


@pytest.fixture
def jspsych_experiment():
    return build_experiment(
        [
            {
                "name": "trial",
                "handler": "form_stimulus_s",
                "stimulus_script": f"{CB}.one_trial",
                "questions": [{"key": "rating"}],
            },
            {"name": "end", "handler": "form_end_session"},
        ]
    )


def _state(session) -> dict:
    session.refresh_from_db()
    return json.loads(json.dumps(session.state))


# ------------------------------------------------------------------ run cookies
def test_cookie_holding_another_experiments_token_is_no_run(client, experiment):
    other = build_experiment(SURVEY)
    theirs = start(Client(), other)
    client.cookies[cookie_name(experiment.pk)] = theirs.run_token
    before = _state(theirs)
    nonce = theirs.state["current"]["nonce"]
    response = client.post(f"/run/{experiment.pk}/", {"_order": 1, "_visit": 1, "_nonce": nonce, "q-likes": "Yes"})
    assert response.status_code == 403 and b'data-error-code="no_run"' in response.content
    assert client.get(f"/run/{experiment.pk}/").status_code == 403
    assert not Response.objects.exists() and _state(theirs) == before


@pytest.mark.parametrize("token", ["x" * 43, "", "a" * 65, "abc\x00def", "' OR 1=1 --"])
def test_random_or_malformed_token_is_no_run(client, experiment, token):
    client.cookies[cookie_name(experiment.pk)] = token
    response = client.get(f"/run/{experiment.pk}/")
    assert response.status_code == 403 and b'data-error-code="no_run"' in response.content
    assert client.post(f"/run/{experiment.pk}/", {"_order": 1}).status_code == 403
    assert not Session.objects.exists()


def test_token_of_a_finished_session_shows_the_end_and_stores_nothing(client, experiment):
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"})
    old = current(session)
    submit(client, session, {"again": "No"})
    session.refresh_from_db()
    assert session.end is not None
    rows = Response.objects.count()
    response = submit(client, session, {"again": "Yes"}, ident=old)
    assert response.status_code == 302
    assert Response.objects.count() == rows and Response.objects.get(item="again").value == "No"
    assert client.get(f"/run/{experiment.pk}/").status_code == 200


def test_forged_visit_and_order_store_nothing(client, experiment):
    session = start(client, experiment)
    cur = current(session)
    for forged in (
        {**cur, "visit": 2},
        {**cur, "visit": "x"},
        {**cur, "order": -1},
        {**cur, "order": 10**30},
        {**cur, "nonce": ""},
    ):
        assert submit(client, session, {"likes": "Yes"}, ident=forged).status_code == 302
    assert not Response.objects.exists() and current(session) == cur


# ------------------------------------------------------------------ start link
@pytest.mark.parametrize("code", ["abc\x00", "\x00", "x" * 5000])
def test_unusable_ticket_codes_are_not_found(client, experiment, code):
    response = client.get(f"/run/{experiment.pk}/start/", {"tc": code})
    assert response.status_code == 404 and b'data-error-code="ticket_not_found"' in response.content
    assert not Session.objects.exists()


def test_nul_characters_in_start_parameters_are_dropped(client, experiment):
    tkt = ticket(experiment)
    response = client.get(
        f"/run/{experiment.pk}/start/",
        {"tc": tkt.code, "sona": "ab\x00c", "STUDY_ID": "s\x00", "SESSION_ID": "\x00x"},
        HTTP_USER_AGENT="UA\x00",
    )
    assert response.status_code == 302
    session = Session.objects.get()
    assert (session.sona_code, session.prolific_study_id, session.prolific_session_id, session.user_agent) == (
        "abc",
        "s",
        "x",
        "UA",
    )


def test_ticket_valid_from_and_expires_boundaries(client, experiment, monkeypatch):
    now = timezone.now()
    monkeypatch.setattr("runner.services.timezone.now", lambda: now)
    opens_now = ticket(experiment, valid_from=now)
    assert client.get(f"/run/{experiment.pk}/start/", {"tc": opens_now.code}).status_code == 302
    later = ticket(experiment, valid_from=now + timedelta(microseconds=1))
    assert b"ticket_not_yet_valid" in Client().get(f"/run/{experiment.pk}/start/", {"tc": later.code}).content
    ends_now = ticket(experiment, expires=now)
    assert b"ticket_expired" in Client().get(f"/run/{experiment.pk}/start/", {"tc": ends_now.code}).content
    not_yet = ticket(experiment, expires=now + timedelta(microseconds=1))
    assert Client().get(f"/run/{experiment.pk}/start/", {"tc": not_yet.code}).status_code == 302


def test_create_tickets_takes_a_zoneless_time_as_utc_whatever_time_zone_says(settings):
    from runner.management.commands.create_tickets import parse_when

    settings.TIME_ZONE = "America/New_York"
    with timezone.override("America/New_York"):
        when = parse_when("2031-01-02T03:04", "--expires")
    assert when.isoformat() == "2031-01-02T03:04:00+00:00"
    assert parse_when("2031-01-02T03:04+02:00", "--expires").utcoffset() == timedelta(hours=2)


# ------------------------------------------------------------------ run page posts
@pytest.mark.parametrize("value", ["9" * 40, str(2**63), "-" + "9" * 30, "1e400"])
def test_out_of_range_client_clock_is_ignored(client, experiment, value):
    session = start(client, experiment)
    assert submit(client, session, {"likes": "Yes"}, _client_ms=value).status_code == 302
    row = Response.objects.get(item="likes")
    assert row.client_time_ms is None and row.value == "Yes"


def test_bad_time_zone_is_ignored(client, experiment):
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"}, _tz="../../etc/passwd\x00")
    session.refresh_from_db()
    assert session.timezone == "" and Response.objects.filter(item="likes").exists()


@pytest.mark.parametrize("value", ["Maybe", "yes", "", "Yes\x00"])
def test_values_outside_the_choices_store_nothing(client, experiment, value):
    session = start(client, experiment)
    response = submit(client, session, {"likes": value})
    assert response.status_code == 200 and b"alert-danger" in response.content
    assert not Response.objects.exists() and current(session)["order"] == 1


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e999", "121", "-1"])
def test_numbers_outside_the_range_store_nothing(client, value):
    experiment = build_experiment(
        [
            {
                "name": "n",
                "questions": [
                    {"key": "age", "widget": "numeric", "df_type": "float", "range": {"min": 0, "max": 120.5}}
                ],
            },
        ]
    )
    session = start(client, experiment)
    assert submit(client, session, {"age": value}).status_code == 200
    assert not Response.objects.exists()


def test_answers_are_escaped_when_shown_again(client):
    experiment = build_experiment(
        [
            {"name": "t", "questions": [{"key": "note", "widget": "text", "df_type": "string"}, {"key": "likes"}]},
        ]
    )
    session = start(client, experiment)
    body = submit(client, session, {"note": '"><script>alert(1)</script>'}).content.decode()  # likes missing
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_csrf_is_enforced_on_the_run_page(experiment):
    browser = Client(enforce_csrf_checks=True)
    session = start(browser, experiment)
    response = submit(browser, session, {"likes": "Yes"})
    assert response.status_code == 403 and not Response.objects.exists()


def test_oversized_body_is_refused_before_anything_is_stored(jspsych_experiment, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200_000
    browser = Client(enforce_csrf_checks=True)
    session = start(browser, jspsych_experiment)
    page = browser.get(f"/run/{jspsych_experiment.pk}/").content.decode()
    csrf = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    big = json.dumps([{**TRIAL, "pad": "x" * 300_000}])
    response = submit(browser, session, {"rating": "Yes", "_jspsych": big}, csrfmiddlewaretoken=csrf)
    assert response.status_code == 400 and not Response.objects.exists()


# ------------------------------------------------------------------ jsPsych data
def _deep(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "raw, message",
    [
        ('{"trial_index": 0}', b"could not be read"),
        ('"text"', b"could not be read"),
        ("[[1], [2]]", b"could not be read"),
        ('[{"rt": NaN}]', b"could not be read"),
        ('[{"rt": Infinity}]', b"could not be read"),
        ('[{"response": "a\\u0000b"}]', b"could not be read"),
        ('[{"a\\u0000": 1}]', b"could not be read"),
        ('[{"response": "\\ud800"}]', b"could not be read"),
        ("[" * 100_000 + "]" * 100_000, b"could not be read"),
        (json.dumps([{"deep": _deep(40)}]), b"could not be read"),
        (json.dumps([{}] * 10_001), b"more trials (10001) than this study can store (10000)"),
        (json.dumps([{"pad": "x" * 2_100_000}]), b"more data (2.1 MB) than this study can store (2.0 MB)"),
    ],
)
def test_hostile_jspsych_data_gets_a_clear_error_and_stores_nothing(client, jspsych_experiment, raw, message):
    session = start(client, jspsych_experiment)
    before = current(session)
    response = submit(client, session, {"rating": "Yes", "_jspsych": raw})
    assert response.status_code == 200 and message in response.content
    assert not Response.objects.exists() and current(session) == before


def test_jspsych_limit_stays_below_djangos_body_limit(settings):
    from runner.handlers.base import jspsych_limits

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    assert jspsych_limits()["bytes"] == 1_000_000 - 64 * 1024
    settings.JSPSYCH_DATA_MAX_BYTES = 5_000
    assert jspsych_limits()["bytes"] == 5_000


def test_jspsych_page_posts_multipart_and_names_its_limit(client, jspsych_experiment):
    start(client, jspsych_experiment)
    body = client.get(f"/run/{jspsych_experiment.pk}/").content.decode()
    assert 'enctype="multipart/form-data"' in body and 'data-max-bytes="2000000"' in body


def test_reasonable_nesting_is_kept(client, jspsych_experiment):
    session = start(client, jspsych_experiment)
    trial = {**TRIAL, "response": {"Q0": {"a": [1, [2, [3]]]}}}
    assert submit(client, session, {"rating": "Yes", "_jspsych": json.dumps([trial])}).status_code == 302
    assert Response.objects.get(item="jspsych:0").jspsych_data["response"] == trial["response"]


# ------------------------------------------------------------------ email link
def test_email_link_of_a_deleted_session_is_a_clear_error(client, experiment):
    from django.core import signing

    from runner.services import EMAIL_SALT

    token = signing.dumps({"s": 987654, "o": 1, "n": "x"}, salt=EMAIL_SALT)
    response = client.get(f"/run/{experiment.pk}/verify/{token}/")
    assert response.status_code == 400 and b'data-error-code="bad_email_link"' in response.content
    assert not Ticket.objects.filter(used=True).exists()
