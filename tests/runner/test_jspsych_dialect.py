"""The jsPsych dialect's server side (issue 17): a package's jspsych.js served from the
package folder, timeline-builder results of stimulus scripts, reports of failed timelines
(CSRF, size and rate limits, log line, nothing stored) and the experimenter's skip."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from runner import failures
from runner.errors import BadCallbackResult
from runner.handlers.base import BaseHandler
from runner.models import Response, TimelineFailure
from tests.runner.builders import CB, build_experiment, current, start

JS = b'EnsembleJsPsych.register("f", function () {}); var t = {type: jsPsychHtmlKeyboardResponse};\n'


@pytest.fixture
def package(settings, tmp_path):
    """A package ``dialectpkg`` with a jspsych.js, in an extra experiments folder."""
    root = tmp_path / "experiments"
    (root / "dialectpkg").mkdir(parents=True)
    (root / "dialectpkg" / "__init__.py").write_text("")
    (root / "dialectpkg" / "jspsych.js").write_bytes(JS)
    (root / "dialectpkg" / "secret.py").write_text("KEY = 1\n")
    settings.EXPERIMENTS_PATH = [*settings.EXPERIMENTS_PATH, root]
    return root / "dialectpkg"


def _experiment(script=f"{CB}.one_trial", **kwargs):
    return build_experiment([{"name": "task", "stimulus_script": script,
                              "questions": [{"key": "likes", "choices": ["Yes", "No"]}]},
                             {"name": "end", "handler": "form_end_session"}], **kwargs)  # fmt: skip


def test_package_script_is_served_with_its_hash_and_type(client, db, package):
    experiment = _experiment("dialectpkg.timelines.task")
    from runner.jspsych_package import page_script

    info = page_script(experiment.pk, "dialectpkg.timelines.task")
    assert info["plugins"] == ["html-keyboard-response"]  # the vendored plugin the file names
    response = client.get(info["url"])
    assert response.status_code == 200 and response.content == JS
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert "immutable" in response["Cache-Control"]
    stale = client.get(info["url"].split("?")[0] + "?v=old")
    assert stale.status_code == 200 and stale["Cache-Control"] == "no-cache"
    (package / "jspsych.js").write_bytes(JS + b"// changed\n")
    assert page_script(experiment.pk, "dialectpkg.timelines.task")["url"] != info["url"]  # content hash


@pytest.mark.parametrize(
    "path",
    [
        "dialectpkg/secret.py",
        "dialectpkg/__init__.py",
        "..%2Fdialectpkg/jspsych.js",
        "other/jspsych.js",
        "runner/jspsych.js",
    ],
)
def test_nothing_else_is_served(client, db, package, path):
    experiment = _experiment("dialectpkg.timelines.task")
    response = client.get(f"/run/{experiment.pk}/package/{path}")
    assert response.status_code == 404


def test_a_package_the_experiment_does_not_use_is_not_served(client, db, package):
    experiment = _experiment()  # its stimulus script lives in tests.runner
    assert client.get(f"/run/{experiment.pk}/package/dialectpkg/jspsych.js").status_code == 404


def test_the_page_loads_the_package_script_beside_the_form(client, db, package, settings):
    (package / "timelines.py").write_text(
        "def task(run):\n    return [{'type': 'html-keyboard-response', "
        "'stimulus': 'x', 'on_finish': {'function': 'f'}}]\n"
    )
    experiment = _experiment("dialectpkg.timelines.task")
    start(client, experiment)
    html = client.get(f"/run/{experiment.pk}/").content.decode()
    assert f'data-package-script="/run/{experiment.pk}/package/dialectpkg/jspsych.js?v=' in html
    assert html.index('id="jspsych-host"') < html.index("<form")  # beside the form, not inside it
    assert "jspsych_dialect.js" in html and "data-timeline-error" in html


@pytest.mark.parametrize(
    "result",
    [
        {"timeline": "rt", "params": {"n": 2}},
        {"timeline": "rt"},
    ],
)
def test_a_timeline_builder_result_is_kept(result):
    assert BaseHandler().interpret(result).timeline == result
    assert BaseHandler().interpret((result, None)).timeline == result


@pytest.mark.parametrize(
    "result",
    [
        {"timeline": "rt", "extra": 1},
        {"timeline": ""},
        {"timeline": 3},
        {"timeline": "rt", "params": [1]},
        {"not": "a timeline"},
    ],
)
def test_a_bad_timeline_builder_result_is_refused(result):
    with pytest.raises(BadCallbackResult):
        BaseHandler().interpret(result)


def _report(client, experiment, session, **overrides):
    cur = current(session)
    body = {
        "order": cur["order"],
        "visit": cur["visit"],
        "nonce": cur["nonce"],
        "kind": "unknown_function",
        "message": 'Unknown function "nope" at timeline[0].on_finish',
    }
    body.update(overrides)
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        f"/run/{experiment.pk}/timeline-failure/",
        data,
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value if "csrftoken" in client.cookies else "",
    )


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def _started(client, experiment):
    session = start(client, experiment)
    client.get(f"/run/{experiment.pk}/")  # sets the CSRF cookie, as the page does
    return session


def test_a_report_is_stored_and_logged_without_personal_data(csrf_client, db, caplog):
    experiment = _experiment()
    session = _started(csrf_client, experiment)
    with caplog.at_level(logging.WARNING, logger="runner.jspsych"):
        response = _report(csrf_client, experiment, session)
    assert response.status_code == 200, response.content
    failure = TimelineFailure.objects.get()
    assert (failure.kind, failure.form.name, failure.form_order, failure.session_id) == (
        "unknown_function",
        "task",
        1,
        session.pk,
    )
    line = caplog.records[-1].getMessage()
    assert f"experiment={experiment.slug}" in line and "form=task" in line and '"nope"' in line
    assert f"session={failures.session_pseudonym(session)}" in line
    assert session.run_token not in line and session.ticket.code not in line
    assert not Response.objects.exists()
    assert failures.counts(experiment.pk) == {"total": 1, "open": 1}


def test_a_report_needs_the_csrf_token_and_the_run(csrf_client, db):
    experiment = _experiment()
    session = _started(csrf_client, experiment)
    cur = current(session)
    no_token = csrf_client.post(f"/run/{experiment.pk}/timeline-failure/", json.dumps(
        {"order": cur["order"], "visit": cur["visit"], "nonce": cur["nonce"], "kind": "script", "message": "x"}),
        content_type="application/json")  # fmt: skip
    assert no_token.status_code == 403
    assert (
        Client().post(f"/run/{experiment.pk}/timeline-failure/", "{}", content_type="application/json").json()["code"]
        == "no_run"
    )
    assert not TimelineFailure.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"nonce": "old"}, 409, "not_current"),
        ({"kind": "mystery"}, 400, "bad_report"),
        ({"order": "x"}, 400, "bad_report"),
        ({"message": "x" * 5000}, 413, "too_large"),
    ],
)
def test_bad_reports_change_nothing(csrf_client, db, overrides, status, code):
    experiment = _experiment()
    session = _started(csrf_client, experiment)
    response = _report(csrf_client, experiment, session, **overrides)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not TimelineFailure.objects.exists()


def test_reports_are_rate_limited_per_run(csrf_client, db, settings):
    settings.JSPSYCH_FAILURES_PER_MINUTE = 3
    experiment = _experiment()
    session = _started(csrf_client, experiment)
    codes = [_report(csrf_client, experiment, session).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert TimelineFailure.objects.count() == 3


def test_the_experimenter_skips_the_form_for_that_run(csrf_client, db, client):
    experiment = _experiment()
    session = _started(csrf_client, experiment)
    _report(csrf_client, experiment, session)
    failure = TimelineFailure.objects.get()
    editor = get_user_model().objects.create_superuser("ed", password="pw-12345678")
    client.force_login(editor)
    page = client.get(f"/editor/runner/experiment/{experiment.pk}/change/").content.decode()
    assert "jsPsych timelines that failed: 1 (1 not skipped)" in page and f'data-failure="{failure.pk}"' in page
    response = client.post(f"/run/editor/failures/{failure.pk}/skip/", HTTP_ACCEPT="application/json")
    assert response.json() == {"ok": True}
    assert current(session)["order"] == 2  # moved on; nothing stored for the failed form
    assert not Response.objects.exists()
    failure.refresh_from_db()
    assert failure.skipped_at is not None and failure.skipped_by == editor
    again = client.post(f"/run/editor/failures/{failure.pk}/skip/", HTTP_ACCEPT="application/json")
    assert (again.status_code, again.json()["code"]) == (409, "already_skipped")
    assert current(session)["order"] == 2


def test_only_experimenters_may_skip(csrf_client, db, client):
    experiment = _experiment()
    session = _started(csrf_client, experiment)
    _report(csrf_client, experiment, session)
    failure = TimelineFailure.objects.get()
    staff = get_user_model().objects.create_user("st", password="pw-12345678", is_staff=True)
    client.force_login(staff)  # staff, but neither editor of experiments nor attached to a group session
    assert client.post(f"/run/editor/failures/{failure.pk}/skip/").status_code == 403
    assert current(session)["order"] == 1


def test_the_console_lists_failures_only_to_its_experimenter(db, client):
    from groups import services as group_services
    from tests.factories import SessionFactory

    experiment = _experiment(is_group=True)
    lead = get_user_model().objects.create_user("lead", password="pw-12345678", is_staff=True)
    other = get_user_model().objects.create_user("other", password="pw-12345678", is_staff=True)
    gs = group_services.start_group_session(experiment=experiment, size=1, experimenter=lead)
    from runner.models import Ticket

    session = SessionFactory(experiment=experiment, ticket=Ticket.objects.get(pk=gs.ticket_id))
    pseudonym = group_services.attach_participant(session=session, ticket=session.ticket).pseudonym
    session.state = {"current": {"order": 1, "visit": 1, "nonce": "n1"}}
    session.save()
    failures.record(session=session, report=failures.Report(order=1, visit=1, nonce="n1", kind="media",
                                                            message="could not load /a.png"))  # fmt: skip
    url = f"/group/session/status/{gs.pk}/failures/"
    client.force_login(other)
    assert client.get(url).status_code == 403
    client.force_login(lead)
    [row] = client.get(url).json()["failures"]
    assert (row["participant"], row["kind"], row["form"], row["skipped"]) == (pseudonym, "media", "task", False)
    assert row["skip_url"] == f"/run/editor/failures/{row['id']}/skip/"
    assert client.post(row["skip_url"], HTTP_ACCEPT="application/json").json() == {"ok": True}  # attached: may skip
