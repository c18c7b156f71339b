"""The handler registry and the special handlers (consent, registration, email, end page)."""

import re
from datetime import date

import pytest
from django.core import mail
from django.utils import timezone

from runner.handlers import BaseHandler, get_handler, register_handler, registered
from runner.handlers.builtin import GroupTrialHandler
from runner.models import Handler, Response, Session, Stimulus, Subject
from runner.personal import email_hmac

from .builders import CB, build_experiment, current, start, submit

pytestmark = pytest.mark.django_db


def test_registry_covers_every_handler_name():
    assert set(registered()) == {h.value for h in Handler}
    for name in registered():
        assert isinstance(get_handler(name), BaseHandler)


def test_registry_refuses_silent_override_and_allows_replace():
    class Lockstep(GroupTrialHandler):
        pass

    previous = registered()["group_trial"]
    with pytest.raises(ValueError):
        register_handler("group_trial", Lockstep)
    try:
        register_handler("group_trial", Lockstep, replace=True)
        assert type(get_handler("group_trial")) is Lockstep
    finally:
        register_handler("group_trial", previous, replace=True)


def test_group_trial_default_is_a_per_participant_form(client):
    previous = registered()["group_trial"]
    register_handler("group_trial", GroupTrialHandler, replace=True)  # the runner's own, not the groups app's
    try:
        _group_trial_default(client)
    finally:
        register_handler("group_trial", previous, replace=True)


def _group_trial_default(client):
    experiment = build_experiment(
        [
            {
                "name": "g",
                "handler": "group_trial",
                "stimulus_script": f"{CB}.one_trial",
                "questions": [{"key": "rating"}],
            }
        ]
    )
    start(client, experiment)
    assert b"jspsych-timeline" in client.get(f"/run/{experiment.pk}/").content


def _consent(questions=None, policy=None):
    return build_experiment(
        [
            {
                "name": "consent",
                "handler": "form_consent",
                "header": "<p>Please read.</p>",
                "questions": questions or [],
            },
            {"name": "q", "questions": [{"key": "likes"}]},
        ],
        data_policy=policy or {},
    )


def test_consent_shows_policy_summary_and_agree_moves_on(client):
    experiment = _consent(policy={"subject": {"dob": "year_only"}, "jspsych": {"rt": {"round_to": 10}}})
    session = start(client, experiment)
    body = client.get(f"/run/{experiment.pk}/").content.decode()
    assert "What we keep" in body and "I agree" in body and "I do not agree" in body
    submit(client, session, {"_action": "next"})
    assert current(session)["order"] == 2
    assert Response.objects.get(session=session, item="consent").value == "agreed"


def test_consent_decline_ends_the_session(client):
    experiment = _consent()
    session = start(client, experiment)
    submit(client, session, {"_action": "decline"})
    session.refresh_from_db()
    assert session.end is not None and session.state["declined"]
    assert b"chose not to take part" in client.get(f"/run/{experiment.pk}/").content


def test_consent_question_answered_with_disagree_declines(client):
    experiment = _consent(questions=[{"key": "agree", "choices": ["Agree", "Disagree"]}])
    session = start(client, experiment)
    submit(client, session, {"agree": "Disagree"})
    session.refresh_from_db()
    assert session.state["declined"] and Response.objects.get(item="agree").value == "Disagree"


def test_subject_register_stores_encrypted_fields_and_age(client):
    experiment = build_experiment(
        [{"name": "reg", "handler": "form_subject_register"}, {"name": "q", "questions": [{"key": "likes"}]}]
    )
    session = start(client, experiment)
    today = timezone.localdate()
    dob = date(today.year - 30, 1, 1)
    response = submit(
        client,
        session,
        {"_x": "1"},
        **{
            "q-subject_name_first": "Ada",
            "q-subject_name_last": "Lovelace",
            "q-subject_email": "Ada@Example.org ",
            "q-subject_dob": dob.isoformat(),
            "q-subject_phone": "+44 1234",
        },
    )
    assert response.status_code == 302
    session.refresh_from_db()
    subject = Subject.objects.get(pk=session.subject_id)
    assert (subject.name_first, subject.name_last, subject.email, subject.dob, subject.phone) == (
        "Ada",
        "Lovelace",
        "Ada@Example.org",
        dob,
        "+44 1234",
    )
    assert subject.email_hmac == email_hmac("ada@example.org")
    assert session.age == 30 - (1 if (today.month, today.day) < (1, 1) else 0)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT name_last, email FROM runner_subject")
        assert all("Lovelace" not in row[0] and "example" not in row[1] for row in cursor.fetchall())


def test_subject_register_validates(client):
    experiment = build_experiment([{"name": "reg", "handler": "form_subject_register"}])
    session = start(client, experiment)
    response = submit(client, session, {}, **{"q-subject_email": "not-an-email", "q-subject_dob": "2999-01-01"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"subject_name_first", "subject_email", "subject_dob"} <= set(errors)


def test_subject_register_respects_data_policy(client):
    experiment = build_experiment(
        [{"name": "reg", "handler": "form_subject_register"}],
        data_policy={"subject": {"dob": "age_in_years", "phone": "drop"}},
    )
    session = start(client, experiment)
    submit(
        client,
        session,
        {},
        **{
            "q-subject_name_first": "A",
            "q-subject_name_last": "B",
            "q-subject_email": "a@b.org",
            "q-subject_dob": "1990-06-15",
            "q-subject_phone": "123",
        },
    )
    session.refresh_from_db()
    subject = Subject.objects.get(pk=session.subject_id)
    assert subject.dob is None and subject.phone == "" and session.age >= 30


def test_subject_email_collects_email(client):
    experiment = build_experiment(
        [{"name": "mail", "handler": "form_subject_email"}, {"name": "q", "questions": [{"key": "likes"}]}]
    )
    session = start(client, experiment)
    submit(client, session, {}, **{"q-subject_email": "p@example.org"})
    subject = Subject.objects.get(pk=session.subject_id)
    assert subject.email == "p@example.org" and subject.email_hmac == email_hmac("p@example.org")
    assert current(session)["order"] == 2


def _login_experiment():
    return build_experiment(
        [{"name": "login", "handler": "form_login_w_email"}, {"name": "q", "questions": [{"key": "likes"}]}]
    )


def _link_from_mail():
    assert len(mail.outbox) == 1
    return re.search(r"http://testserver(/run/\d+/verify/[^/\s]+/)", mail.outbox[0].body).group(1)


def test_login_with_email_sends_link_and_verifies(client, django_capture_on_commit_callbacks):
    experiment = _login_experiment()
    session = start(client, experiment)
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, session, {}, **{"q-subject_email": "kim@example.org"})
    assert current(session)["order"] == 1 and current(session)["email_sent"]
    assert b"data-email-sent" in client.get(f"/run/{experiment.pk}/").content
    link = _link_from_mail()
    response = client.get(link)
    assert response.status_code == 302 and response["Location"] == f"/run/{experiment.pk}/"
    assert current(session)["order"] == 2
    subject = Subject.objects.get(pk=session.subject_id)
    assert subject.email_verified and subject.email == "kim@example.org"
    assert client.get(link).status_code == 302  # opening it twice is harmless
    assert client.get(f"/run/{experiment.pk}/verify/forged-token/").status_code == 400


def test_login_with_email_links_a_returning_participant(client, django_capture_on_commit_callbacks):
    returning = Subject.objects.create(
        email="kim@example.org", email_hmac=email_hmac("kim@example.org"), email_verified=True
    )
    experiment = _login_experiment()
    session = start(client, experiment)
    temp_subject = session.subject_id
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, session, {}, **{"q-subject_email": "KIM@example.org"})
    client.cookies.clear()  # the link is opened in the mail app's browser
    response = client.get(_link_from_mail())
    assert response.status_code == 200 and b"Email address confirmed" in response.content
    session.refresh_from_db()
    assert session.subject_id == returning.pk
    assert not Subject.objects.filter(pk=temp_subject).exists()
    assert set(Response.objects.filter(session=session).values_list("subject_id", flat=True)) == {returning.pk}


def test_end_page_sona_and_prolific_links(client):
    experiment = build_experiment(
        [{"name": "end", "handler": "form_end_session"}],
        sona_url="https://x.sona-systems.com/webstudy_credit.aspx?survey_code=XXXX",
        prolific_completion_url="https://app.prolific.com/submissions/complete?cc=ABC",
    )
    session = start(client, experiment, sona="SC99", PROLIFIC_PID="p1", SESSION_ID="s1")
    body = client.get(f"/run/{experiment.pk}/").content.decode()
    assert "https://x.sona-systems.com/webstudy_credit.aspx?survey_code=SC99" in body
    assert "https://app.prolific.com/submissions/complete?cc=ABC" in body
    session.refresh_from_db()
    assert session.end is not None
    client.cookies.clear()
    start(client, experiment)
    body = client.get(f"/run/{experiment.pk}/").content.decode()
    assert "data-sona-link" not in body and "data-prolific-link" not in body


def test_image_handler_shows_stimulus_and_caches_it(client, monkeypatch):
    stim = Stimulus.objects.create(name="pic", location="stimuli/pic.png", description="A red square")
    import tests.runner.scripts as scripts

    monkeypatch.setattr(scripts, "pick", lambda run: stim.pk, raising=False)
    experiment = build_experiment(
        [
            {"name": "img", "handler": "form_image_s", "stimulus_script": f"{CB}.pick", "questions": [{"key": "r"}]},
            {"name": "more", "handler": "form_generic_s", "questions": [{"key": "s"}]},
        ]
    )
    session = start(client, experiment)
    body = client.get(f"/run/{experiment.pk}/").content.decode()
    assert 'src="/media/stimuli/pic.png"' in body and 'alt="A red square"' in body
    submit(client, session, {"r": "Yes"})
    submit(client, session, {"s": "No"})
    assert set(Response.objects.values_list("stimulus_id", flat=True)) == {stim.pk}


def test_session_count_unchanged_by_handler_pages(client):
    experiment = build_experiment([{"name": "end", "handler": "form_end_session"}])
    start(client, experiment)
    for _ in range(3):
        client.get(f"/run/{experiment.pk}/")
    assert Session.objects.count() == 1


def test_handler_hooks_skip_visit_and_row_fields(client):
    """What the groups app relies on: ``skip_visit`` on GET and ``Outcome.row_fields`` on rows."""
    from runner.handlers.builtin import GenericHandler

    class Skipper(GenericHandler):
        def skip_visit(self, page):
            return "leave_loop" if page.visit >= 2 else None

        def process(self, page, form, post):
            outcome = super().process(page, form, post)
            outcome.row_fields = {"step": 40 + page.visit, "shared_params": {"colour": "red"}}
            return outcome

    previous = registered()["form_feedback"]
    register_handler("form_feedback", Skipper, replace=True)
    try:
        experiment = build_experiment(
            [
                {"name": "loop", "handler": "form_feedback", "questions": [{"key": "r"}], "repeat": 5, "goto": 1},
                {"name": "end", "handler": "form_end_session"},
            ]
        )
        session = start(client, experiment)
        submit(client, session, {"r": "Yes"})
        assert current(session)["order"] == 1  # visit 2 entered
        assert b"data-end-page" in client.get(f"/run/{experiment.pk}/").content  # skipped: loop left on GET
        row = Response.objects.get(item="r")
        assert row.step == 41 and row.shared_params == {"colour": "red"}
    finally:
        register_handler("form_feedback", previous, replace=True)
