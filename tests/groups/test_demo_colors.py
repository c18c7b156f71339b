"""The colour demo (experiments/demo/colors.yaml) played in lockstep by three bots
(bots.testing.run_bots) against a live server: real HTTP, the participant sockets, the
live page's answers, and an experimenter who starts, advances each step once everybody
answered and ends the session. Bot N rates step S with 1 + N + S (tests/groups/colour_bots.py)."""

from __future__ import annotations

import pytest
from django.conf import settings

from bots.testing import run_bots
from groups.models import GroupSession, StepLog
from runner.definitions.loader import load_file
from runner.models import Response, Session
from tests.bots.conftest import bots_server  # noqa: F401 - the live server fixture
from tests.e2e.conftest import e2e_static_root, live_server_factory  # noqa: F401 - fixtures used here

pytestmark = pytest.mark.django_db(transaction=True)


def test_three_participants_rate_colours_in_lockstep(bots_server):  # noqa: F811
    demo = load_file(path=settings.BASE_DIR / "experiments/demo/colors.yaml").experiment
    report = run_bots(bots_server.url, "demo-colors", 3, start_group=True, bots_module="tests.groups.colour_bots")
    assert report["ok"], report  # every bot reached the end, each expectation held
    assert report["answers"] == {"sent": 12, "stored": 12, "lost": 0, "doubled": 0, "played_by_bot": 0}
    gs = GroupSession.objects.get(pk=report["group_session"])
    assert gs.phase == "ended"
    assert [r[0] for r in gs.context["warmth"]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert gs.context["step_means"] == {"0": 3.0, "1": 4.0, "2": 5.0}  # every rating, the last one included
    assert gs.context["summary"]["ratings"] == 9
    rows = Response.objects.filter(group_session=gs, item="warmth")
    assert sorted((r.step, float(r.value)) for r in rows) == [(s, 2.0 + i + s) for s in range(3) for i in range(3)]
    logs = StepLog.objects.filter(group_session=gs, action__in=["started", "advanced"])
    steps = {log.step: log.shared_params for log in logs}
    assert all(r.shared_params == steps[r.step] and r.shared_params["colour"] for r in rows)
    runs = Session.objects.filter(experiment=demo, group_membership__group_session=gs)
    assert runs.count() == 3 and all(run.end is not None for run in runs)
