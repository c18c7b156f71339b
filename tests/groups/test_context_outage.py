"""Issue 14, cause 7: hook writes to the context are not lost while Redis is down.

The report: 20 participants on the colour demo, Redis killed at step 1 after 6 answers
and restarted 5 s later; every answer was stored but 14 ``on_response`` hooks and
``on_all_responded`` failed (logged only), so the context lost 14 ratings and the next
colour was chosen from incomplete data. Now the hooks' writes are saved with the
answer, in its transaction, whether Redis answers or not; Redis's copy is replayed
from the database when it is back; the console says the store is down meanwhile.

On PostgreSQL, with a private redis-server (never the shared one) as the context store.
"""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from groups import selectors, services
from groups.context import RETRY_SECONDS, RedisContextStore
from groups.models import GroupSession
from runner import batching
from runner import services as runner_services
from runner.callbacks import resolve_module
from runner.models import Experiment, Response
from tests.runner.builders import current, start, submit

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

N, STEPS, KILLED_AT, BEFORE_KILL = 20, 5, 1, 6
TRIAL = '[{"trial_type": "html-button-response", "response": 0, "rt": 800, "trial_index": 0}]'


def _rating(i: int, step: int) -> int:
    return 1 + (i * 3 + step * 5) % 7


class Lab:
    """The colour demo (``STEPS`` steps) with ``N`` participants through the runner's views."""

    def __init__(self, staff, tmp_path):
        definition = (settings.BASE_DIR / "experiments/demo/colors.yaml").read_text()
        path = tmp_path / "colors.yaml"
        path.write_text(definition.replace("repeat: 3", f"repeat: {STEPS}"))
        call_command("load_experiment", str(path), stdout=StringIO())
        self.demo = Experiment.objects.get(slug="demo-colors")
        self.gs = services.start_group_session(experiment=self.demo, experimenter=staff, size=N)
        self.people = []
        for _ in range(N):
            client = Client()
            session = start(client, self.demo, self.gs.ticket)
            submit(client, session, {"agree": "I agree"})
            self.people.append((client, session))
        self.console = Client()
        self.console.force_login(staff)

    def answer(self, i: int, step: int) -> None:
        client, session = self.people[i]
        response = submit(client, session, {"warmth": str(_rating(i, step)), "_jspsych": TRIAL},
                          **{"q-_group_step": step})  # fmt: skip
        assert response.status_code == 302  # accepted (or a refusal page, which fails here)

    def answer_together(self, indices, step: int) -> None:
        """Answers arriving together, stored by one transaction (runner/batching.py)."""
        submissions = []
        for i in indices:
            session = self.people[i][1]
            cur = current(session)
            data = {"q-warmth": str(_rating(i, step)), "_jspsych": TRIAL, "q-_group_step": str(step),
                    "_tz": "Europe/Berlin"}  # fmt: skip
            submissions.append(runner_services.Submission(session.pk, cur["order"], cur["visit"], cur["nonce"],
                                                          data, 1700000000000, "Europe/Berlin"))  # fmt: skip
        results = batching.submit_batch(submissions)
        assert [getattr(r, "kind", r) for r in results] == ["stored"] * len(submissions)

    def store_down_on_console(self) -> bool:
        response = self.console.get(reverse("groups:session_store", args=[self.gs.pk]))
        assert response.status_code == 200
        return response.json()["down"]

    def context(self) -> dict:
        return GroupSession.objects.get(pk=self.gs.pk).context


def test_hook_writes_survive_a_redis_outage_mid_step(private_redis, monkeypatch, staff, tmp_path, capsys):
    store = RedisContextStore(private_redis.url, "outage", ttl_seconds=600)
    monkeypatch.setattr("groups.context.get_store", lambda: store)
    lab = Lab(staff, tmp_path)
    gs = lab.gs
    services.group_session_start(group_session=gs, by=staff)
    for step in range(STEPS):
        if step != KILLED_AT:
            for i in range(N):
                lab.answer(i, step)
        else:
            for i in range(BEFORE_KILL):
                lab.answer(i, step)
            private_redis.stop()  # Redis killed in the middle of the step
            assert selectors.snapshot(gs.pk)["context_store_down"] is True
            assert lab.store_down_on_console() is True
            for i in range(BEFORE_KILL, 13):
                lab.answer(i, step)  # one at a time
            lab.answer_together(range(13, N), step)  # and together
            ctx = lab.context()  # the database has every rating, and the step's mean
            assert len([r for r in ctx["warmth"] if r[0] == step]) == N and str(step) in ctx["step_means"]
            private_redis.start()  # same port, nothing kept
            time.sleep(RETRY_SECONDS + 0.2)
            snap = selectors.snapshot(gs.pk)  # syncs: the copy is replayed from the database
            assert snap["context_store_down"] is False and lab.store_down_on_console() is False
            assert store.get(gs.pk) == snap["context"] == lab.context()
        ctx = lab.context()
        ratings = [r[2] for r in ctx["warmth"]]
        assert len(ratings) == N * (step + 1)
        assert ctx["step_means"][str(step)] == pytest.approx(sum(_rating(i, step) for i in range(N)) / N, abs=1e-3)
        if step < STEPS - 1:  # the next colour, from every rating so far
            expected = resolve_module("demo.colors").next_colour(ratings, ctx["shown"])
            services.group_session_advance(group_session=gs, step=step, by=staff)
            assert GroupSession.objects.get(pk=gs.pk).shared_params == expected
    services.group_session_end(group_session=gs, by=staff)
    ctx = lab.context()
    rows = Response.objects.filter(group_session=gs, item="warmth").select_related("session__group_membership")
    stored = sorted((r.step, r.session.group_membership.pseudonym, float(r.value)) for r in rows)
    in_context = sorted(tuple(r) for r in ctx["warmth"])
    with capsys.disabled():
        print(f"\n[cause 7] {len(stored)} answers stored, {len(in_context)} ratings in the context")
    assert len(stored) == N * STEPS and in_context == stored
    assert ctx["summary"]["ratings"] == N * STEPS
    selectors.snapshot(gs.pk)  # as every published snapshot does (this test's transaction never commits)
    assert store.get(gs.pk) == ctx


def test_the_store_notice_is_for_the_attached_experimenter_only(gs, staff, django_user_model):
    url = reverse("groups:session_store", args=[gs.pk])
    other = Client()
    other.force_login(django_user_model.objects.create_user("other", password="pw-123456", is_staff=True))
    assert other.get(url).status_code == 403
    mine = Client()
    mine.force_login(staff)
    body = mine.get(url).json()
    assert body == {"context_store": settings.CONTEXT_STORE, "down": False}
