"""Callbacks (the run object, failures roll back) and jsPsych data storage."""

import json
import logging

import pytest

from runner.models import Response, Session, Stimulus
from runner.run_context import RunContext

from .builders import CB, build_experiment, current, start, submit

pytestmark = pytest.mark.django_db

TRIALS = [
    {"trial_type": "html-keyboard-response", "trial_index": 0, "response": "f", "rt": 412, "stimulus": "<p>x</p>"},
    {"trial_type": "html-keyboard-response", "trial_index": 1, "response": None, "rt": None},
]


def test_raising_callback_shows_polite_500_logs_and_stores_nothing(client, caplog):
    experiment = build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "boom", "stimulus_script": f"{CB}.explode", "questions": [{"key": "x"}]},
        ]
    )
    session = start(client, experiment)
    before = dict(current(session))
    with caplog.at_level(logging.ERROR, logger="runner.callbacks"):
        response = submit(client, session, {"likes": "Yes"})
    assert response.status_code == 500
    assert b'data-error-code="callback_failed"' in response.content
    assert b"ZeroDivisionError" not in response.content  # no traceback for the participant
    assert not Response.objects.exists()  # the answers of form one were rolled back too
    assert current(session) == before
    record = next(r for r in caplog.records if r.name == "runner.callbacks")
    assert f"{CB}.explode" in record.getMessage() and record.exc_info
    assert "Yes" not in record.getMessage()


def test_raising_callback_on_the_first_form_creates_no_session(client):
    experiment = build_experiment([{"name": "boom", "condition_script": f"{CB}.explode"}])
    from .builders import ticket

    response = client.get(f"/run/{experiment.pk}/start/", {"tc": ticket(experiment).code})
    assert response.status_code == 500
    assert not Session.objects.exists()


def test_unusable_callback_result_is_a_callback_failure(client):
    experiment = build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "bad", "handler": "form_stimulus_s", "stimulus_script": f"{CB}.bad_result"},
        ]
    )
    session = start(client, experiment)
    assert submit(client, session, {"likes": "Yes"}).status_code == 500


def test_run_object_fields(client, monkeypatch):
    seen = {}

    def spy(run, colour=None):
        seen.update(run=run, colour=colour)
        return True

    import tests.runner.scripts as scripts

    monkeypatch.setattr(scripts, "spy", spy, raising=False)
    experiment = build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "two", "condition_script": f"{CB}.spy", "questions": [{"key": "x"}]},
        ],
        params={"colour": "red", "unused": 1},
    )
    session = start(client, experiment)
    submit(client, session, {"likes": "No"})
    run = seen["run"]
    assert isinstance(run, RunContext)
    assert run.session.pk == session.pk and run.subject.pk == session.subject_id
    assert run.experiment.pk == experiment.pk and run.form.name == "two" and run.visit == 1
    assert run.params == {"colour": "red", "unused": 1} and seen["colour"] == "red"
    assert run.last_answer("likes") == "No" and run.group is None


def test_jspsych_trials_stored_one_row_each(client):
    Stimulus.objects.create(name="tone")
    experiment = build_experiment(
        [
            {
                "name": "trial",
                "handler": "form_stimulus_s",
                "stimulus_script": f"{CB}.trial_with_stimulus",
                "questions": [{"key": "rating"}],
            },
            {"name": "about", "handler": "form_generic_s", "questions": [{"key": "familiar"}]},
            {"name": "plain", "questions": [{"key": "done"}]},
        ]
    )
    session = start(client, experiment)
    body = client.get(f"/run/{experiment.pk}/").content.decode()
    assert '<script id="jspsych-timeline" type="application/json">' in body
    assert "\\u003Cp\\u003EPress a key" in body  # json_script escaping, never raw HTML in a script
    assert 'class="d-none"' in body  # questions hidden until the timeline finishes
    submit(client, session, {"rating": "Yes", "_jspsych": json.dumps(TRIALS)})
    rows = {r.item: r for r in Response.objects.filter(session=session)}
    assert set(rows) == {"rating", "jspsych:0", "jspsych:1"}
    assert rows["jspsych:0"].jspsych_data["rt"] == 412 and rows["jspsych:0"].value == "f"
    assert rows["jspsych:0"].trial_index == 0 and rows["jspsych:1"].value is None
    stim = Stimulus.objects.get(name="tone")
    assert rows["rating"].stimulus_id == stim.pk and rows["jspsych:0"].stimulus_id == stim.pk
    assert rows["rating"].jspsych_data is None
    submit(client, session, {"familiar": "No"})  # _s form: cached stimulus carried over
    assert Response.objects.get(item="familiar").stimulus_id == stim.pk
    submit(client, session, {"done": "Yes"})  # non-_s form clears the cache
    assert Response.objects.get(item="done").stimulus_id is None
    session.refresh_from_db()
    assert session.state["stimulus"] is None


def test_missing_or_bad_jspsych_data_is_refused(client):
    experiment = build_experiment(
        [
            {
                "name": "trial",
                "handler": "form_stimulus_s",
                "stimulus_script": f"{CB}.one_trial",
                "questions": [{"key": "rating"}],
            },
        ]
    )
    session = start(client, experiment)
    assert b"has not finished yet" in submit(client, session, {"rating": "Yes"}).content
    assert b"could not be read" in submit(client, session, {"rating": "Yes", "_jspsych": "{nope"}).content
    assert b"could not be read" in submit(client, session, {"rating": "Yes", "_jspsych": "[1, 2]"}).content
    assert not Response.objects.exists()


def test_jspsych_only_form_and_data_policy_applied(client):
    experiment = build_experiment(
        [{"name": "trial", "handler": "form_generic", "stimulus_script": f"{CB}.one_trial"}],
        data_policy={"jspsych": {"rt": {"round_to": 100}, "stimulus": "drop"}},
    )
    session = start(client, experiment)
    submit(client, session, {"_jspsych": json.dumps(TRIALS[:1])})
    row = Response.objects.get(session=session)
    assert row.item == "jspsych:0" and row.jspsych_data["rt"] == 400
    assert "stimulus" not in row.jspsych_data


def test_feedback_handler_shows_callback_html(client):
    experiment = build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "fb", "handler": "form_feedback", "stimulus_script": f"{CB}.feedback"},
        ]
    )
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"})
    assert b"<p class='fb'>You said Yes</p>" in client.get(f"/run/{experiment.pk}/").content


def test_policy_violation_shows_clear_error_and_stores_nothing(client, monkeypatch):
    import runner.policy

    def refuse(experiment, trials):
        raise runner.policy.PolicyViolation("ip_address", "not allowed")

    monkeypatch.setattr(runner.policy, "sanitize_jspsych", refuse)
    experiment = build_experiment(
        [
            {
                "name": "trial",
                "handler": "form_stimulus_s",
                "stimulus_script": f"{CB}.one_trial",
                "questions": [{"key": "rating"}],
            },
        ]
    )
    session = start(client, experiment)
    response = submit(client, session, {"rating": "Yes", "_jspsych": json.dumps(TRIALS)})
    assert response.status_code == 400
    assert b'data-error-code="policy_violation"' in response.content and b"ip_address" in response.content
    assert not Response.objects.exists() and current(session)["order"] == 1


def test_callback_storing_a_forbidden_subject_field_gets_policy_violation(client):
    import runner.policy

    experiment = build_experiment(
        [{"name": "one", "questions": [{"key": "likes"}]}], data_policy={"subject": {"email": "drop"}}
    )
    session = start(client, experiment)
    from runner.run_context import make_run

    position = experiment.experiment_forms.get(order=1)
    run = make_run(session=session, position=position, visit=1)
    with pytest.raises(runner.policy.PolicyViolation) as info:
        run.set_subject_field("email", "x@example.org")
    assert info.value.field == "email"
    run.set_subject_field("name_first", "Kim")
    session.subject.refresh_from_db()
    assert session.subject.name_first == "Kim"
