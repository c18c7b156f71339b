"""Start links: tickets, referral parameters, group redirect, preview, run cookie."""

from datetime import timedelta

import pytest
from django.utils import timezone

from runner.models import Session, Ticket
from runner.personal import prolific_pid_hmac
from runner.run_cookie import cookie_name

from .builders import build_experiment, start, ticket

pytestmark = pytest.mark.django_db

SURVEY = [{"questions": [{"key": "likes"}]}, {"handler": "form_end_session"}]


@pytest.fixture
def experiment():
    return build_experiment(SURVEY)


def _start(client, experiment_id, code):
    return client.get(f"/run/{experiment_id}/start/", {"tc": code})


def test_start_creates_session_sets_cookie_and_redirects(client, experiment):
    response = _start(client, experiment.pk, ticket(experiment).code)
    assert response.status_code == 302 and response["Location"] == f"/run/{experiment.pk}/"
    session = Session.objects.get(experiment=experiment)
    cookie = response.cookies[cookie_name(experiment.pk)]
    assert cookie.value == session.run_token
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert session.state["current"]["order"] == 1 and session.subject is not None
    assert not session.is_preview


@pytest.mark.parametrize(
    "case, status, code, text",
    [
        ("not_found", 404, "ticket_not_found", "not valid"),
        ("wrong_experiment", 404, "ticket_wrong_experiment", "does not belong to this study"),
        ("used", 409, "ticket_used", "already been used"),
        ("not_yet_valid", 403, "ticket_not_yet_valid", "not active yet"),
        ("expired", 410, "ticket_expired", "no longer active"),
    ],
)
def test_ticket_errors_have_their_own_page_and_status(client, experiment, case, status, code, text):
    now = timezone.now()
    if case == "not_found":
        code_param = "no-such-ticket"
    elif case == "wrong_experiment":
        code_param = ticket(build_experiment(SURVEY)).code
    elif case == "used":
        code_param = ticket(experiment, type=Ticket.Type.USER, used=True).code
    elif case == "not_yet_valid":
        code_param = ticket(experiment, valid_from=now + timedelta(days=1)).code
    else:
        code_param = ticket(experiment, expires=now - timedelta(minutes=1)).code
    response = _start(client, experiment.pk, code_param)
    assert response.status_code == status
    body = response.content.decode()
    assert f'data-error-code="{code}"' in body and text in body
    assert not Session.objects.filter(experiment=experiment).exists()


def test_user_ticket_is_single_use_but_resumes_in_the_same_browser(client, experiment):
    tkt = ticket(experiment, type=Ticket.Type.USER)
    first = start(client, experiment, tkt)
    tkt.refresh_from_db()
    assert tkt.used
    again = start(client, experiment, tkt)  # same browser: resume, not a new session
    assert again.pk == first.pk
    client.cookies.clear()
    assert _start(client, experiment.pk, tkt.code).status_code == 409


def test_solo_experiment_without_ticket_shows_error(client, experiment):
    response = client.get(f"/run/{experiment.pk}/start/")
    assert response.status_code == 400
    assert b'data-error-code="ticket_missing"' in response.content


def test_group_experiment_without_ticket_goes_to_participant_code_page(client):
    experiment = build_experiment(SURVEY, is_group=True)
    response = client.get(f"/run/{experiment.pk}/start/")
    assert response.status_code == 302
    assert response["Location"] == f"/group/session/attach/participant/?experiment={experiment.pk}"


def test_unknown_experiment_is_404(client):
    assert client.get("/run/999999/start/", {"tc": "x"}).status_code == 404


def test_closed_experiment_refuses_participants_but_not_staff(client, admin_client, experiment):
    experiment.is_active = False
    experiment.save()
    assert _start(client, experiment.pk, ticket(experiment).code).status_code == 403
    response = _start(admin_client, experiment.pk, ticket(experiment).code)
    assert response.status_code == 302
    assert Session.objects.get(experiment=experiment).is_preview is True


def test_referral_parameters_are_recorded(client, experiment):
    session = start(client, experiment, sona="S123", PROLIFIC_PID="5f00aa", STUDY_ID="st1", SESSION_ID="se1")
    assert session.sona_code == "S123"
    assert session.prolific_study_id == "st1" and session.prolific_session_id == "se1"
    subject = session.subject
    subject.refresh_from_db()
    assert subject.prolific_pid == "5f00aa"
    assert subject.prolific_pid_hmac == prolific_pid_hmac("5f00aa")
    # The same Prolific participant in another study is the same subject.
    other = build_experiment(SURVEY)
    client.cookies.clear()
    again = start(client, other, PROLIFIC_PID="5f00aa")
    assert again.subject_id == subject.pk


def test_prolific_id_is_encrypted_at_rest(client, experiment):
    from django.db import connection

    session = start(client, experiment, PROLIFIC_PID="PID-SECRET-42")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prolific_pid FROM runner_subject WHERE id = %s",
            [session.subject_id.hex if connection.vendor == "sqlite" else session.subject_id],
        )
        raw = cursor.fetchone()[0]
    assert "PID-SECRET-42" not in raw


def test_group_ticket_calls_attach_participant(client):
    import groups.services
    from runner import services as runner_services

    calls = []
    # the groups app registers its attach at start-up (GroupsConfig.ready): stand in for it
    runner_services.use_group_attach(lambda *, session, ticket: calls.append((session.pk, ticket.pk)))
    try:
        experiment = build_experiment(SURVEY, is_group=True)
        tkt = ticket(experiment, type=Ticket.Type.GROUP)
        session = start(client, experiment, tkt)
    finally:
        runner_services.use_group_attach(groups.services.attach_participant)
    assert calls == [(session.pk, tkt.pk)]


def test_two_experiments_side_by_side_in_one_browser(client):
    a, b = build_experiment(SURVEY), build_experiment(SURVEY)
    sa, sb = start(client, a), start(client, b)
    assert sa.pk != sb.pk
    assert client.get(f"/run/{a.pk}/").status_code == 200
    assert client.get(f"/run/{b.pk}/").status_code == 200


def test_run_page_without_cookie_is_refused(client, experiment):
    response = client.get(f"/run/{experiment.pk}/")
    assert response.status_code == 403 and b'data-error-code="no_run"' in response.content
