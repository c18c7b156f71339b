"""The colour demo (experiments/demo/colors.yaml) run by three participants in
lockstep through the real runner views, the experimenter driving the services."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from groups import selectors, services
from runner.models import Experiment, Response
from tests.runner.builders import current, start, submit

pytestmark = pytest.mark.django_db
TRIAL = '[{"trial_type": "html-button-response", "response": 0, "rt": 800, "trial_index": 0}]'


@pytest.fixture
def demo(db):
    call_command("load_experiment", str(settings.BASE_DIR / "experiments/demo/colors.yaml"), stdout=StringIO())
    return Experiment.objects.get(slug="demo-colors")


def test_three_participants_rate_colours_in_lockstep(demo, staff, django_capture_on_commit_callbacks):
    gs = services.start_group_session(experiment=demo, experimenter=staff, size=3)
    people = []
    for _ in range(3):
        client = Client()
        session = start(client, demo, gs.ticket)
        submit(client, session, {"agree": "I agree"})
        people.append((client, session))
    for client, _session in people:
        assert "Waiting for the experimenter to start" in client.get(f"/run/{demo.pk}/").content.decode()
    services.group_session_start(group_session=gs, by=staff)
    for step in range(3):
        colour = selectors.snapshot(gs.pk)["shared_params"]["colour"]
        for i, (client, session) in enumerate(people):
            html = client.get(f"/run/{demo.pk}/").content.decode()
            assert f"&quot;colour&quot;: &quot;{colour}&quot;" in html or colour in html
            with django_capture_on_commit_callbacks(execute=True):
                response = submit(client, session, {"warmth": str(2 + i + step), "_jspsych": TRIAL},
                                  **{"q-_group_step": step})  # fmt: skip
            assert response.status_code == 302, re.findall(
                r"(?:invalid-feedback|text-danger|alert-warning)[^>]*>([^<]*)", response.content.decode()
            )
        assert selectors.snapshot(gs.pk)["all_responded"]
        if step < 2:
            services.group_session_advance(group_session=gs, step=step, by=staff)
    services.group_session_end(group_session=gs, by=staff)
    gs.refresh_from_db()
    assert [r[0] for r in gs.context["warmth"]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert gs.context["step_means"] == {"0": 3.0, "1": 4.0, "2": 5.0}  # every rating, the last one included
    assert gs.context["summary"]["ratings"] == 9
    rows = Response.objects.filter(group_session=gs, item="warmth")
    assert rows.count() == 9 and {r.step for r in rows} == {0, 1, 2}
    assert all(r.shared_params and r.shared_params["colour"] for r in rows)
    for _client, session in people:
        assert current(session).get("order") == 3 or session.end is not None
