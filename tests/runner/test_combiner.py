"""The combiner of runner/batching.py: answers waiting together go as one batch, each
thread gets its own result, and nothing is ever left waiting."""

from __future__ import annotations

import threading
import time

import pytest

from runner import batching


def _crowd(combiner, n: int, key="e") -> list:
    barrier = threading.Barrier(n, timeout=5)
    results = [None] * n

    def one(i):
        barrier.wait()
        results[i] = combiner.submit(key, i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "a thread was left waiting"
    return results


def _slow_batches(sizes: list[int]):
    def run(batch):
        sizes.append(len(batch))
        time.sleep(0.02)
        return [f"stored {s}" for s in batch]

    return run


def test_answers_waiting_together_go_as_batches_and_each_gets_its_own_result():
    sizes: list[int] = []
    results = _crowd(batching.Combiner(_slow_batches(sizes), max_size=200), 40)
    assert results == [f"stored {i}" for i in range(40)]
    assert sum(sizes) == 40
    assert sizes[0] == 1 or len(sizes) < 40  # the first runs at once; the rest queue behind it
    assert max(sizes) > 1


def test_no_batch_is_larger_than_the_cap():
    sizes: list[int] = []
    results = _crowd(batching.Combiner(_slow_batches(sizes), max_size=4), 30)
    assert results == [f"stored {i}" for i in range(30)]
    assert max(sizes) <= 4 and sum(sizes) == 30


def test_a_lone_answer_waits_for_nobody():
    sizes: list[int] = []
    combiner = batching.Combiner(_slow_batches(sizes))
    assert combiner.submit("e", 7) == "stored 7"
    assert combiner.submit("e", 8) == "stored 8"
    assert sizes == [1, 1]


def test_a_batch_that_raises_leaves_nobody_waiting_and_the_next_ones_go_on():
    calls = []

    def run(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            time.sleep(0.05)  # the others queue meanwhile
            raise KeyboardInterrupt  # not even an Exception: still nobody hangs
        return [f"stored {s}" for s in batch]

    combiner = batching.Combiner(run)
    results = []
    first = threading.Thread(target=lambda: _catch(lambda: combiner.submit("e", 0), results))
    first.start()
    time.sleep(0.01)
    rest = _crowd(combiner, 5)
    first.join(5)
    assert results == ["interrupted"]
    assert all(r in (batching.ALONE, *(f"stored {i}" for i in range(5))) for r in rest)
    assert combiner.submit("e", 9) == "stored 9"  # not stuck as led by a thread that is gone
    assert combiner._leading == set() and combiner._waiting == {}


def _catch(call, results):
    try:
        results.append(call())
    except KeyboardInterrupt:
        results.append("interrupted")


@pytest.mark.parametrize("key", [None])
def test_answers_of_experiments_that_are_not_group_ones_are_stored_alone(monkeypatch, key):
    monkeypatch.setattr(batching.services, "submit", lambda s: ("alone", s))
    monkeypatch.setattr(batching.COMBINER, "run", lambda subs: pytest.fail("batched"))
    assert batching.submit("submission", key=key) == ("alone", "submission")


def test_batching_can_be_turned_off(settings, monkeypatch):
    settings.RUN_ANSWER_BATCH = False
    monkeypatch.setattr(batching.services, "submit", lambda s: ("alone", s))
    assert batching.submit("submission", key=3) == ("alone", "submission")


@pytest.mark.django_db
def test_the_kind_of_an_experiment_is_read_once_and_a_stale_one_costs_no_answer(monkeypatch):
    """``selectors.is_group`` picks the batched way for a group's answers without a
    statement per POST; a kind read before the experiment changed gives the answer the
    same result (here a solo answer goes through a batch), and unknown ids are not kept."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from runner import selectors
    from runner.models import Response
    from tests.runner.builders import build_experiment, start, submit

    experiment = build_experiment([{"questions": [{"key": "warm"}]}, {"handler": "form_end_session"}])
    assert selectors.is_group(experiment.pk) is False
    with CaptureQueriesContext(connection) as queries:
        assert selectors.is_group(experiment.pk) is False
    assert len(queries) == 0
    assert selectors.is_group(10**9) is False and 10**9 not in selectors._kinds
    browser = Client()
    run = start(browser, experiment)
    monkeypatch.setitem(selectors._kinds, experiment.pk, (True, time.monotonic()))  # as if it had been a group's
    batches = []
    monkeypatch.setattr(batching.COMBINER, "run", lambda subs: batches.append(len(subs)) or batching.submit_batch(subs))
    assert submit(browser, run, {"warm": "Yes"}).status_code == 302
    assert batches == [1]
    assert list(Response.objects.filter(session=run).values_list("item", "value")) == [("warm", "Yes")]
    monkeypatch.setattr(selectors, "KIND_SECONDS", 0.0)  # read again: solo, so stored alone
    assert selectors.is_group(experiment.pk) is False
