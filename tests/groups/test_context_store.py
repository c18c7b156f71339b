"""The context: merge semantics, the store's versioned copy, and surviving a Redis
restart (on a private redis-server started by the test, never the shared one)."""

from __future__ import annotations

import threading

import pytest

from groups.context import MemoryContextStore, RedisContextStore, merge


def test_merge_semantics():
    """A patch is a shallow merge: each key replaces that key, None deletes it; the
    result is a new dict holding copies of the patch's values (changing the patch
    afterwards changes nothing), and the context merged into is left as it was."""
    first = merge({}, {"a": 1, "b": {"c": [1, 2]}})
    assert first == {"a": 1, "b": {"c": [1, 2]}}
    assert merge(first, {"a": None, "d": "x"}) == {"b": {"c": [1, 2]}, "d": "x"}
    patch = {"e": [1]}
    merged = merge(first, patch)
    patch["e"].append(2)
    assert merged["e"] == [1] and first == {"a": 1, "b": {"c": [1, 2]}}


def _check_semantics(store):
    assert store.get(1) is None
    assert store.mirror(1, {}, 1)
    assert store.get(1) == {}  # an empty context exists, unlike a lost one
    assert store.mirror(1, {"b": {"c": [1, 2]}, "d": "x"}, 3)
    assert store.mirror(1, {"zzz": 1}, 2) is False  # an older copy never replaces a newer one
    assert store.get(1) == {"b": {"c": [1, 2]}, "d": "x"} and store.version(1) == 3
    assert store.mirror(1, {"b": {"c": [1, 2]}, "d": "x"}, 3)  # the same version again: idempotent
    store.delete(1)
    assert store.mirror(1, {"zzz": 1}, 2)  # lost (a Redis restart): any copy restores it
    assert store.get(1) == {"zzz": 1}


def test_memory_store_semantics():
    _check_semantics(MemoryContextStore())


def test_redis_store_semantics(private_redis):
    _check_semantics(RedisContextStore(private_redis.url, "sem", ttl_seconds=60))


def test_redis_copies_never_go_back_across_clients(private_redis):
    """Two processes write copies of increasing versions at the same time, in any order:
    the newest stays (the check and the write are one script)."""
    a = RedisContextStore(private_redis.url, "atomic", ttl_seconds=60)
    b = RedisContextStore(private_redis.url, "atomic", ttl_seconds=60)

    def writer(store, parity):
        for version in range(parity, 201, 2):
            store.mirror(7, {"n": version}, version)

    threads = [threading.Thread(target=writer, args=(s, p)) for s, p in ((a, 1), (b, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.get(7) == {"n": 200} and b.version(7) == 200


@pytest.mark.django_db
def test_context_survives_redis_restart(private_redis, settings, monkeypatch, gs, join, staff):
    """Checkpoint at a step change, restart Redis (all keys lost), the context comes back."""
    from groups import context, selectors, services

    store = RedisContextStore(private_redis.url, "restart", ttl_seconds=60)
    monkeypatch.setattr(context, "get_store", lambda: store)
    join()
    services.group_session_set_context(group_session=gs, patch={"scores": [3, 4]}, by=staff)
    services.group_session_start(group_session=gs, by=staff)
    private_redis.stop()
    private_redis.start()  # same port, empty
    assert store.get(gs.pk) is None
    assert selectors.snapshot(gs.pk)["context"]["scores"] == [3, 4]
    assert store.get(gs.pk)["scores"] == [3, 4]


@pytest.mark.django_db
def test_redis_restart_mid_step_loses_no_context_and_no_answer(private_redis, monkeypatch, staff):
    """The colour demo through the runner's views: Redis restarts (then is flushed) in
    the middle of a step, between two participants' answers. The hooks' context
    (every rating, the step means) and every Response row survive."""
    from io import StringIO

    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from groups import context, selectors, services
    from runner.models import Experiment, Response
    from tests.runner.builders import start, submit

    store = RedisContextStore(private_redis.url, "mid-step", ttl_seconds=60)
    monkeypatch.setattr("groups.context.get_store", lambda: store)
    assert context.get_store() is store
    call_command("load_experiment", str(settings.BASE_DIR / "experiments/demo/colors.yaml"), stdout=StringIO())
    demo = Experiment.objects.get(slug="demo-colors")
    gs = services.start_group_session(experiment=demo, experimenter=staff, size=3)
    people = []
    for _ in range(3):
        client = Client()
        session = start(client, demo, gs.ticket)
        submit(client, session, {"agree": "I agree"})
        people.append((client, session))
    services.group_session_start(group_session=gs, by=staff)
    trial = '[{"trial_type": "html-button-response", "response": 0, "rt": 800, "trial_index": 0}]'

    def answer(i, step):
        client, session = people[i]
        response = submit(client, session, {"warmth": str(2 + i + step), "_jspsych": trial}, **{"q-_group_step": step})
        assert response.status_code == 302

    def lose_redis(how):
        if how == "restart":
            private_redis.stop()
            private_redis.start()  # same port, nothing kept
        else:
            store._redis.flushall()  # our own redis-server, nobody else's keys
        assert store.get(gs.pk) is None

    for step, how in ((0, "restart"), (1, "flushall")):
        answer(0, step)
        answer(1, step)
        lose_redis(how)
        answer(2, step)
        ctx = selectors.snapshot(gs.pk)["context"]
        assert sorted(r[2] for r in ctx["warmth"] if r[0] == step) == [2 + step, 3 + step, 4 + step]
        assert ctx["step_means"][str(step)] == 3.0 + step
        if step == 0:
            services.group_session_advance(group_session=gs, step=0, by=staff)
    services.group_session_end(group_session=gs, by=staff)
    gs.refresh_from_db()
    assert gs.context["summary"]["ratings"] == 6 and gs.context["shown"] == ["lavender", "red"]
    rows = Response.objects.filter(group_session=gs, item="warmth")
    assert sorted((r.step, r.value) for r in rows) == [(s, 2 + i + s) for s in (0, 1) for i in range(3)]


def _values():
    from hypothesis import strategies as st

    text = st.text(alphabet=st.sampled_from(["a", "é", "\x00", "\ud800", "\\", '"', "[", "]", "{", "😀"]), max_size=6)
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | text
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(text | st.integers(), inner,
                                                                                      max_size=3),
        max_leaves=40,
    )  # fmt: skip


def test_merge_refuses_exactly_what_the_walk_finds_wrong(settings):
    """The fast path of ``merge`` (the C encoder, a round trip, a bracket count) and the
    walk that names the problem agree on every value: refused iff the walk finds
    something, accepted as the JSON copy otherwise."""
    import json

    from hypothesis import given
    from hypothesis import settings as hsettings

    from groups.context import value_problem
    from groups.state import GroupError

    settings.GROUP_CONTEXT_MAX_DEPTH = 4

    @hsettings(max_examples=200, deadline=None)
    @given(_values())
    def check(value):
        problem = value_problem(value, 'context key "k"')
        try:
            merged = merge({}, {"k": value})
        except GroupError as exc:
            assert problem is not None and problem in exc.message
        else:
            expected = {} if value is None else {"k": json.loads(json.dumps(value))}  # None deletes
            assert problem is None and merged == expected

    check()
