"""Answers to a lockstep step stored together (runner/batching.py, groups/answers.py):
every answer gets what storing it alone would give it, a batch costs the same
statements for 3 answers and for 12, and a batch that fails stores nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from groups import services, store
from groups.lockstep import StepRefused
from groups.models import GroupSession, Membership
from runner import batching
from runner import services as runner_services
from runner.models import Response
from tests.runner.builders import build_lockstep_experiment, current, start
from tests.threads import in_threads

pytestmark = pytest.mark.django_db
WARMTH = ["Yes", "No", "Yes", "No"]


def _world(size: int, staff):
    experiment = build_lockstep_experiment(5, group_flow="tests.groups.flow_fixture")
    gs = services.start_group_session(experiment=experiment, experimenter=staff)
    runs = [start(Client(), experiment, gs.ticket) for _ in range(size)]
    services.group_session_start(group_session=gs, by=staff)
    return gs, runs


def _submission(run, *, warm="Yes", step=0, ident=None) -> runner_services.Submission:
    cur = ident or current(run)
    data = {"q-warm": warm, "q-_group_step": str(step), "_tz": "Europe/Berlin"}
    return runner_services.Submission(run.pk, cur["order"], cur["visit"], cur["nonce"], data, 1700000000000,
                                      "Europe/Berlin")  # fmt: skip


def _stored(gs) -> int:
    return Response.objects.filter(group_session_id=gs.pk, step=0).count()


def _kinds(results) -> list:
    return [r.kind if isinstance(r, runner_services.SubmitResult) else r for r in results]


def _batch_queries(size: int, staff) -> tuple[list, list[str]]:
    gs, runs = _world(size, staff)
    submissions = [_submission(run) for run in runs]
    with CaptureQueriesContext(connection) as queries:
        results = batching.submit_batch(submissions)
    assert _kinds(results) == ["stored"] * size
    assert _stored(gs) == size
    # the hooks' own savepoints (groups.hooks.call_quietly) aside
    return results, [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def test_a_batch_stores_every_answer_and_moves_every_run_on(staff, flow):
    gs, runs = _world(4, staff)
    before = [current(run) for run in runs]
    results = batching.submit_batch([_submission(run, warm=w) for run, w in zip(runs, WARMTH, strict=True)])
    assert _kinds(results) == ["stored"] * 4
    rows = Response.objects.filter(group_session_id=gs.pk).order_by("session_id")
    assert [(r.session_id, r.item, r.value, r.step) for r in rows] == [
        (run.pk, "warm", w, 0) for run, w in zip(runs, WARMTH, strict=True)
    ]
    for run, old in zip(runs, before, strict=True):
        run.refresh_from_db()
        assert run.state["last_done"] == {k: old[k] for k in ("order", "visit", "nonce")}
        assert run.state["current"]["visit"] == old["visit"] + 1  # the loop's next visit
        assert run.timezone == "Europe/Berlin" and run.clock_offset_ms is not None
    assert set(Membership.objects.filter(group_session=gs).values_list("responded_step", flat=True)) == {0}
    gs.refresh_from_db()
    responses = [c for c in flow.CALLS if c[0] == "on_response"]
    assert sorted(c[2] for c in responses) == sorted(m.pseudonym for m in Membership.objects.filter(group_session=gs))
    # once, after every answer's rows were stored (the hook counts them)
    assert [c for c in flow.CALLS if c[0] == "on_all_responded"] == [("on_all_responded", gs.pk, 0, 4)]


def test_a_batch_of_12_costs_the_statements_of_a_batch_of_3(staff, flow):
    _, small = _batch_queries(3, staff)
    _, large = _batch_queries(12, staff)
    assert len(small) == len(large), large
    assert len(large) <= 15, large  # one answer stored alone makes ten


def test_each_answer_gets_its_own_result_and_the_others_are_stored(staff, flow):
    gs, runs = _world(6, staff)
    ok, stale, invalid, late, twice, also_ok = runs
    first = _submission(twice)
    submissions = [
        _submission(ok),
        _submission(stale, ident={**current(stale), "nonce": "not-this-one"}),
        _submission(invalid, warm="Perhaps"),
        _submission(late, step=3),  # not the current step: the handler refuses it
        first,
        _submission(also_ok),
        first,  # the same POST again in the same batch: stored alone, after the batch
    ]
    results = batching.submit_batch(submissions)
    kinds = _kinds(results)
    assert kinds[0] == kinds[5] == kinds[4] == "stored"
    assert kinds[1] == "stale"
    assert kinds[2] == "invalid" and results[2].form.errors
    assert isinstance(results[3], StepRefused) and results[3].code == "stale_step"
    assert results[6] == batching.ALONE
    assert sorted(Response.objects.filter(group_session_id=gs.pk).values_list("session_id", flat=True)) == sorted(
        [ok.pk, twice.pk, also_ok.pk]
    )
    # the repeat, stored alone as the view does, is the duplicate it is
    assert runner_services.submit_form(
        session_id=twice.pk, order=first.order, visit=first.visit, nonce=first.nonce, data=first.data
    ).kind == "duplicate"  # fmt: skip


def test_an_answer_refused_under_the_lock_stores_nothing_of_its_own(staff, flow, monkeypatch):
    gs, runs = _world(3, staff)
    gone = Membership.objects.get(session=runs[1])
    original = store.send_answering_members

    def without_one(group_session_id, keys):  # as if the run had left the group after the unlocked read
        found = original(group_session_id, keys)
        return lambda: {k: v for k, v in found().items() if k[0] != gone.pk}

    monkeypatch.setattr(store, "send_answering_members", without_one)
    results = batching.submit_batch([_submission(run) for run in runs])
    assert _kinds(results)[0] == _kinds(results)[2] == "stored"
    assert isinstance(results[1], StepRefused) and results[1].code == "not_in_group"
    assert not Response.objects.filter(session=runs[1]).exists()
    runs[1].refresh_from_db()
    assert "last_done" not in runs[1].state  # its run did not move on


def test_a_batch_that_fails_is_rolled_back_and_every_answer_is_stored_alone(staff, flow, monkeypatch):
    gs, runs = _world(3, staff)
    version = GroupSession.objects.get(pk=gs.pk).version
    original, calls = runner_services.move_on, []

    def fails_second(taken, data):  # e.g. the next form's callback raising
        calls.append(taken.session.pk)
        if len(calls) == 2:
            raise RuntimeError("a callback failed")
        original(taken, data)

    monkeypatch.setattr(runner_services, "move_on", fails_second)
    results = batching.submit_batch([_submission(run) for run in runs])
    assert results == [batching.ALONE] * 3
    assert _stored(gs) == 0
    assert GroupSession.objects.get(pk=gs.pk).version == version
    assert set(Membership.objects.filter(group_session=gs).values_list("responded_step", flat=True)) == {None}
    assert not [c for c in flow.CALLS if c[0] == "on_response"]
    monkeypatch.setattr(runner_services, "move_on", original)
    assert _kinds(batching.submit_batch([_submission(run) for run in runs])) == ["stored"] * 3


def test_answers_through_the_view_are_batched_per_experiment(staff, flow, monkeypatch):
    experiment = build_lockstep_experiment(5, group_flow="tests.groups.flow_fixture")
    gs = services.start_group_session(experiment=experiment, experimenter=staff)
    browser = Client()
    run = start(browser, experiment, gs.ticket)
    services.group_session_start(group_session=gs, by=staff)
    seen = []
    monkeypatch.setattr(batching.COMBINER, "run", lambda subs: seen.append(len(subs)) or batching.submit_batch(subs))
    cur = current(run)
    post = {
        "_order": cur["order"],
        "_visit": cur["visit"],
        "_nonce": cur["nonce"],
        "q-warm": "Yes",
        "q-_group_step": "0",
    }
    response = browser.post(f"/run/{experiment.pk}/", post)
    assert response.status_code == 302
    assert seen == [1]
    assert Response.objects.filter(session=run, step=0).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_processes_batching_at_once_store_everything_and_one_sees_the_last_answer(staff, flow):
    """Two combiners (as two server processes) with the answers of one group session
    arriving at once in many threads: every answer stored, on_all_responded once."""
    gs, runs = _world(16, staff)
    combiners = [batching.Combiner(), batching.Combiner()]
    barrier = threading.Barrier(len(runs), timeout=5)
    results, lock = [], threading.Lock()

    def answer(i, run):
        submission = _submission(run)
        barrier.wait()
        result = combiners[i % 2].submit(gs.experiment_id, submission)
        if result == batching.ALONE:
            result = runner_services.submit(submission)
        with lock:
            results.append(result)

    in_threads([lambda i=i, run=run: answer(i, run) for i, run in enumerate(runs)], timeout=60)
    assert _kinds(results) == ["stored"] * len(runs)
    assert _stored(gs) == len(runs)
    assert [c[0] for c in flow.CALLS].count("on_all_responded") == 1
    with transaction.atomic():
        assert GroupSession.objects.get(pk=gs.pk).version >= len(runs)


def test_a_run_with_nothing_on_screen_is_told_stale_and_the_batch_goes_on(staff, flow):
    gs, runs = _world(3, staff)
    done, empty, ok = runs
    late = _submission(done)
    done.state["finished"] = True
    done.save(update_fields=["state"])
    blank = _submission(empty)
    empty.state.pop("current")
    empty.save(update_fields=["state"])
    results = batching.submit_batch([late, blank, _submission(ok)])
    assert _kinds(results) == ["stale", "stale", "stored"]
    assert list(Response.objects.filter(group_session_id=gs.pk).values_list("session_id", flat=True)) == [ok.pk]


def _by_token(submission: runner_services.Submission, run, *, token=None, experiment_id=None):
    """The same answer named as the view names it: by the run cookie's token."""
    from dataclasses import replace

    return replace(submission, session_id=None, run_token=run.run_token if token is None else token,
                   experiment_id=run.experiment_id if experiment_id is None else experiment_id)  # fmt: skip


def test_a_batch_finds_its_runs_by_their_cookies_tokens_in_the_same_statements(staff, flow):
    gs, runs = _world(5, staff)
    by_id, *named = runs
    submissions = [_submission(by_id), *(_by_token(_submission(run), run) for run in named)]
    with CaptureQueriesContext(connection) as queries:
        results = batching.submit_batch(submissions)
    assert _kinds(results) == ["stored"] * 5
    assert _stored(gs) == 5
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    _, by_ids = _batch_queries(5, staff)
    assert len(statements) == len(by_ids)  # runs by id and by token: locked by one statement all the same


def test_a_token_that_names_no_run_of_the_experiment_is_no_run_and_the_others_are_stored(staff, flow):
    from runner.errors import NoRunError

    gs, runs = _world(4, staff)
    other = build_lockstep_experiment(2, group_flow="tests.groups.flow_fixture")
    ok, forged, elsewhere, also_ok = runs
    results = batching.submit_batch([
        _by_token(_submission(ok), ok),
        _by_token(_submission(forged), forged, token="not-a-token-of-anyone"),
        _by_token(_submission(elsewhere), elsewhere, experiment_id=other.pk),  # its token, another experiment's URL
        _by_token(_submission(also_ok), also_ok),
    ])  # fmt: skip
    assert _kinds(results)[0] == _kinds(results)[3] == "stored"
    for refused in results[1:3]:
        assert isinstance(refused, NoRunError) and refused.code == "no_run"
    assert sorted(Response.objects.filter(group_session_id=gs.pk).values_list("session_id", flat=True)) == sorted(
        [ok.pk, also_ok.pk]
    )
    for run in (forged, elsewhere):
        run.refresh_from_db()
        assert "last_done" not in run.state


def test_an_answer_by_token_stored_alone_finds_its_run_or_is_no_run(staff, flow):
    from runner.errors import NoRunError

    gs, runs = _world(2, staff)
    assert runner_services.submit(_by_token(_submission(runs[0]), runs[0])).kind == "stored"
    with pytest.raises(NoRunError):
        runner_services.submit(_by_token(_submission(runs[1]), runs[1], token="forged"))
    assert list(Response.objects.filter(group_session_id=gs.pk).values_list("session_id", flat=True)) == [runs[0].pk]


def test_a_forged_run_cookie_on_a_group_answer_gets_the_session_not_found_page(staff, flow):
    experiment = build_lockstep_experiment(5, group_flow="tests.groups.flow_fixture")
    gs = services.start_group_session(experiment=experiment, experimenter=staff)
    browser = Client()
    run = start(browser, experiment, gs.ticket)
    services.group_session_start(group_session=gs, by=staff)
    cur = current(run)
    post = {"_order": cur["order"], "_visit": cur["visit"], "_nonce": cur["nonce"], "q-warm": "Yes",
            "q-_group_step": "0"}  # fmt: skip
    from runner.run_cookie import cookie_name

    forged = Client()
    forged.cookies[cookie_name(experiment.pk)] = "x" * 43
    page = forged.post(f"/run/{experiment.pk}/", post)
    assert page.status_code == 403 and b"Session not found" in page.content
    no_cookie = Client().post(f"/run/{experiment.pk}/", post)
    assert no_cookie.status_code == 403 and b"Session not found" in no_cookie.content
    assert not Response.objects.filter(session=run).exists()
    invalid = browser.post(f"/run/{experiment.pk}/", {**post, "q-warm": "Perhaps"})  # re-rendered with its errors
    assert invalid.status_code == 200 and b"invalid-feedback" in invalid.content
    assert browser.post(f"/run/{experiment.pk}/", post).status_code == 302
    assert Response.objects.filter(session=run, step=0).count() == 1
