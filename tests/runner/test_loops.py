"""Loops (repeat, goto, break-loop button, empty timeline) and condition scripts."""

import pytest

from runner.models import Response
from runner.services import request_loop_exit

from .builders import CB, build_experiment, current, start, submit

pytestmark = pytest.mark.django_db


def _loop_experiment(**last):
    return build_experiment(
        [
            {"name": "intro", "questions": [{"key": "ready"}]},
            {"name": "rate", "questions": [{"key": "rating"}]},
            {"name": "check", "questions": [{"key": "sure"}], "repeat": 3, "goto": 2, **last},
            {"name": "end", "handler": "form_end_session"},
        ]
    )


def _visits(session, item):
    return list(Response.objects.filter(session=session, item=item).order_by("visit").values_list("visit", flat=True))


def test_loop_of_three_gives_visits_one_to_three(client):
    experiment = _loop_experiment()
    session = start(client, experiment)
    submit(client, session, {"ready": "Yes"})
    seen = []
    for _ in range(3):
        cur = current(session)
        seen.append((cur["order"], cur["visit"]))
        submit(client, session, {"rating": "Yes"})
        body = client.get(f"/run/{experiment.pk}/").content.decode()
        assert f"Round {current(session)['visit']} of 3" in body
        submit(client, session, {"sure": "No"})
    assert seen == [(2, 1), (2, 2), (2, 3)]
    assert _visits(session, "rating") == [1, 2, 3]
    assert _visits(session, "sure") == [1, 2, 3]
    assert _visits(session, "ready") == [1]
    assert current(session)["order"] == 4
    session.refresh_from_db()
    assert session.state["loops"] == {"3": 3}


def test_break_loop_button_leaves_the_loop(client):
    experiment = _loop_experiment(break_loop_button=True)
    session = start(client, experiment)
    submit(client, session, {"ready": "Yes"})
    submit(client, session, {"rating": "Yes"})
    assert b'value="break_loop"' in client.get(f"/run/{experiment.pk}/").content
    submit(client, session, {"sure": "Yes", "_action": "break_loop"})
    assert current(session)["order"] == 4
    assert _visits(session, "rating") == [1] and _visits(session, "sure") == [1]


def test_break_loop_is_ignored_where_not_enabled(client):
    experiment = _loop_experiment()
    session = start(client, experiment)
    submit(client, session, {"ready": "Yes"})
    submit(client, session, {"rating": "Yes"})
    assert b'value="break_loop"' not in client.get(f"/run/{experiment.pk}/").content
    submit(client, session, {"sure": "Yes", "_action": "break_loop"})
    assert current(session)["order"] == 2


def test_empty_timeline_ends_the_loop(client):
    experiment = build_experiment(
        [
            {
                "name": "trial",
                "handler": "form_stimulus_s",
                "stimulus_script": f"{CB}.three_then_empty",
                "questions": [{"key": "rating"}],
            },
            {"name": "more", "questions": [{"key": "sure"}], "repeat": 5, "goto": 1},
            {"name": "end", "handler": "form_end_session"},
        ],
        params={"rounds": 2},
    )
    session = start(client, experiment)
    for _ in range(2):
        trials = '[{"trial_index": 0, "response": "f", "rt": 500}]'
        submit(client, session, {"rating": "Yes", "_jspsych": trials})
        submit(client, session, {"sure": "Yes"})
    # The third visit's script returned [] -> straight to the end page.
    assert current(session)["order"] == 3
    assert _visits(session, "rating") == [1, 2]


def test_empty_timeline_outside_a_loop_skips_the_form(client):
    experiment = build_experiment(
        [
            {"name": "nothing", "handler": "form_stimulus_s", "stimulus_script": f"{CB}.always_empty"},
            {"name": "q", "questions": [{"key": "likes"}]},
        ]
    )
    session = start(client, experiment)
    assert current(session)["order"] == 2


def test_condition_script_false_skips_a_form(client):
    experiment = build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "skipped", "condition_script": f"{CB}.never", "questions": [{"key": "never_asked"}]},
            {"name": "shown", "condition_script": f"{CB}.answered_yes", "questions": [{"key": "why"}]},
            {"name": "end", "handler": "form_end_session"},
        ]
    )
    session = start(client, experiment)
    submit(client, session, {"likes": "Yes"})
    assert current(session)["order"] == 3  # 2 skipped, 3 shown because likes == Yes
    client.cookies.clear()
    other = start(client, experiment)
    submit(client, other, {"likes": "No"})
    assert current(other)["order"] == 4  # both skipped


def test_skipped_loop_end_still_counts_passes(client):
    experiment = build_experiment(
        [
            {"name": "rate", "questions": [{"key": "rating"}]},
            {"name": "hidden", "condition_script": f"{CB}.never", "repeat": 2, "goto": 1},
            {"name": "end", "handler": "form_end_session"},
        ]
    )
    session = start(client, experiment)
    submit(client, session, {"rating": "Yes"})
    assert current(session) == {**current(session), "order": 1, "visit": 2}
    submit(client, session, {"rating": "No"})
    assert current(session)["order"] == 3


def test_experimenter_exit_loop_signal(client):
    experiment = _loop_experiment()
    session = start(client, experiment)
    submit(client, session, {"ready": "Yes"})
    request_loop_exit(session_id=session.pk)
    submit(client, session, {"rating": "Yes"})
    assert current(session)["order"] == 4
