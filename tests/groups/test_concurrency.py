"""Prove the race, then prove the fix (STYLE 13): two experimenters press Advance
on the same step at the same moment, in two threads with their own connections.
Then twenty participants answer through the runner's real views while the
experimenter advances twice: every answer is stored once, with its step."""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client

from groups import answers, selectors, services, store
from groups.models import GroupSession, Membership, StepLog
from groups.state import GroupError
from runner.models import Response
from tests.runner.builders import build_lockstep_experiment, start
from tests.threads import in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(gs, staff, monkeypatch, *, locking: bool):
    barrier = threading.Barrier(2, timeout=1.5)

    def lock_load_and(group_session, also=None):
        pk = store.pk_of(group_session)
        row = store.lock(pk) if locking else GroupSession.objects.select_related("experiment").get(pk=pk)
        try:
            barrier.wait()  # both read the state before either writes (if the lock lets them)
        except threading.BrokenBarrierError:
            pass
        more = also(pk) if also is not None else None
        return (row, *store.load_state(row), more() if more is not None else None)

    monkeypatch.setattr(store, "lock_load_and", lock_load_and)
    outcomes = []

    def press():
        try:
            services.group_session_advance(group_session=gs.pk, step=0, by=staff)
            outcomes.append("ok")
        except GroupError as exc:
            outcomes.append(exc.code)

    in_threads([press, press])
    return sorted(outcomes)


@pytest.fixture
def running(gs, join, staff):
    join()
    services.group_session_start(group_session=gs, by=staff)
    return gs


def test_without_the_lock_both_advances_win(running, staff, monkeypatch):
    assert race(running, staff, monkeypatch, locking=False) == ["ok", "ok"]
    assert StepLog.objects.filter(group_session=running, action="advanced").count() == 2  # the race


def test_lock_and_load_waits_for_the_lock_before_it_reads_the_rows(running, staff):
    """The two statements travel together (pipelined), but the rows are read once the lock
    is granted: a change committed meanwhile is in them."""
    held, read = threading.Event(), {}

    def holder():
        with transaction.atomic():
            store.lock_and_load(running.pk)
            held.set()
            time.sleep(0.3)
            Membership.objects.filter(group_session=running).update(form="changed meanwhile")

    def reader():
        held.wait(5)
        with transaction.atomic():
            _, state, _ = store.lock_and_load(running.pk)
            read["forms"] = {p.form for p in state.participants.values()}

    in_threads([holder, reader])
    assert read["forms"] == {"changed meanwhile"}


def test_with_the_lock_one_advance_wins(running, staff, monkeypatch):
    assert race(running, staff, monkeypatch, locking=True) == ["ok", "stale_step"]
    running.refresh_from_db()
    assert running.step == 1
    assert StepLog.objects.filter(group_session=running, action="advanced").count() == 1


# ---- twenty participants answering while the experimenter advances -------------------

PARTICIPANTS = 20
_FIELD = re.compile(r'name="(_order|_visit|_nonce|q-_group_step)"[^>]*?value="([^"]*)"')


def _form_on(client: Client, experiment) -> dict | None:
    """GET the run page as the browser would: the hidden fields of the trial form, or
    None on the waiting screen."""
    html = client.get(f"/run/{experiment.pk}/").content.decode()
    fields = dict(_FIELD.findall(html))
    return fields if "q-_group_step" in fields else None


class Lab:
    """The participants' browsers (one test Client each, in threads with their own
    database connections) and what each POST answered."""

    def __init__(self, experiment, gs):
        self.experiment = experiment
        self.clients = [Client() for _ in range(PARTICIPANTS)]
        self.sessions = [start(c, experiment, gs.ticket) for c in self.clients]
        self.stored: list[tuple[int, int]] = []  # (session id, step) answered with a redirect
        self.refused: list[tuple[int, int]] = []  # (session id, step) answered with 409
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []

    def answer(self, i: int, before_post=None) -> None:
        """Load the page, (wait at ``before_post``), POST a rating for the step on screen."""
        try:
            form = _form_on(self.clients[i], self.experiment)
            assert form is not None, "every participant has a form for the current step here"
            if before_post is not None:
                before_post()
            response = self.clients[i].post(f"/run/{self.experiment.pk}/", {**form, "q-warm": "Yes" if i % 2 else "No"})
            outcome = (self.sessions[i].pk, int(form["q-_group_step"]))
            with self.lock:
                if response.status_code == 302:
                    self.stored.append(outcome)
                else:
                    assert response.status_code == 409, response.status_code
                    self.refused.append(outcome)
        except BaseException as exc:  # reported by answer_all(): a thread's failure is the test's
            self.errors.append(exc)
            raise

    def _run(self, calls) -> None:
        in_threads(calls, timeout=90)
        assert not self.errors, self.errors

    def answer_all(self, *, early: int = PARTICIPANTS, while_advancing: list | None = None) -> list[str]:
        """Everyone answers the step on screen: the first ``early`` participants before
        anything else happens, then the others at the same instant (one barrier) as the
        ``while_advancing`` experimenter calls. Returns the advances' outcomes."""
        extra = while_advancing or []
        self._run([lambda i=i: self.answer(i) for i in range(early)])
        barrier = threading.Barrier(PARTICIPANTS - early + len(extra), timeout=30)
        outcomes: list[str] = []

        def advance(fn):
            try:
                barrier.wait()
                fn()
                outcomes.append("ok")
            except GroupError as exc:
                outcomes.append(exc.code)

        racing = [lambda i=i: self.answer(i, barrier.wait) for i in range(early, PARTICIPANTS)]
        self._run(racing + [lambda fn=fn: advance(fn) for fn in extra])
        return sorted(outcomes)


@pytest.mark.redis
def test_twenty_participants_answer_while_the_experimenter_advances(transactional_db, staff, flow):
    experiment = build_lockstep_experiment(5, group_flow="tests.groups.flow_fixture")
    gs = services.start_group_session(experiment=experiment, experimenter=staff)
    lab = Lab(experiment, gs)
    services.group_session_start(group_session=gs, by=staff)
    advance = lambda step: lambda: services.group_session_advance(group_session=gs, step=step, by=staff)  # noqa: E731

    # Step 0: half the group answers; the other half posts at the instant two consoles,
    # both showing step 0, press Advance: one advance wins, and posts that lose the race
    # to it are refused (409).
    half = PARTICIPANTS // 2
    assert lab.answer_all(early=half, while_advancing=[advance(0), advance(0)]) == ["ok", "stale_step"]
    # Stored or refused, everyone now has the form for step 1 (a refused answer is given
    # again, for the new step). The same race for the advance to step 2.
    assert lab.answer_all(early=half, while_advancing=[advance(1)]) == ["ok"]
    assert lab.answer_all() == []  # step 2: nobody moves on, every answer is stored
    assert len(lab.stored) + len(lab.refused) == 3 * PARTICIPANTS
    assert all(sum(1 for _, step in lab.stored if step == s) >= half for s in (0, 1))

    log = {row.step: row for row in StepLog.objects.filter(group_session=gs, action__in=["started", "advanced"])}
    assert sorted(log) == [0, 1, 2] and StepLog.objects.filter(group_session=gs, action="advanced").count() == 2
    rows = list(Response.objects.filter(group_session=gs, item="warm"))
    stored = sorted((r.session_id, r.step) for r in rows)
    assert stored == sorted(lab.stored)  # every accepted answer stored exactly once, with its step
    assert len(set(stored)) == len(stored)
    assert not set(lab.refused) & set(stored)  # a refused answer is stored nowhere
    assert {sid for sid, step in stored if step == 2} == {s.pk for s in lab.sessions}
    for row in rows:  # stored while its step was current, with that step's shared parameters
        assert row.shared_params == log[row.step].shared_params == {"color": ["red", "green", "blue"][row.step],
                                                                     "step": row.step}  # fmt: skip
        stored_ms = row.submitted_at.timestamp() * 1000
        assert log[row.step].at_ms <= stored_ms + 1
        assert row.step + 1 not in log or stored_ms <= log[row.step + 1].at_ms + 1
    gs.refresh_from_db()
    assert (gs.step, gs.phase) == (2, "running") and selectors.snapshot(gs.pk)["all_responded"]


# ---- the last answer of a step, among many at once -----------------------------------

ANSWERING = 24


def answer_at_once(gs, sessions, monkeypatch, *, locking: bool) -> list[str]:
    """Every session answers step 0 in its own thread and transaction. All of them have
    read their own row before any writes it and looks for who is still answering (if the
    lock lets them), which is the race for "the last answer"."""
    barrier = threading.Barrier(len(sessions), timeout=1.5)
    original = store.save_answers

    def still_answering_together(*args, **kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "save_answers", still_answering_together)
    if not locking:
        monkeypatch.setattr(
            store, "send_lock", lambda pk: lambda: GroupSession.objects.select_related("experiment").get(pk=pk)
        )
    outcomes, lock = [], threading.Lock()

    def answer(session):
        try:
            with transaction.atomic():
                answers.record_response(session=session, step=0, answers={"i": session.pk})
            with lock:
                outcomes.append("ok")
        except GroupError as exc:
            with lock:
                outcomes.append(exc.code)

    in_threads([lambda s=s: answer(s) for s in sessions], timeout=60)
    return outcomes


@pytest.fixture
def crowd(gs, join, staff):
    sessions = [join()[0] for _ in range(ANSWERING)]
    services.group_session_start(group_session=gs, by=staff)
    gs.refresh_from_db()
    return gs, sessions


def all_responded_calls(flow, gs):
    return [c for c in flow.CALLS if c[0] == "on_all_responded" and c[1] == gs.pk]


def test_without_the_lock_no_answer_is_the_last(crowd, flow, monkeypatch):
    gs, sessions = crowd
    assert answer_at_once(gs, sessions, monkeypatch, locking=False) == ["ok"] * ANSWERING
    assert all_responded_calls(flow, gs) == []  # the race: each saw the others still answering


def test_with_the_lock_exactly_one_answer_is_the_last(crowd, flow, monkeypatch):
    gs, sessions = crowd
    version = gs.version
    assert answer_at_once(gs, sessions, monkeypatch, locking=True) == ["ok"] * ANSWERING
    assert all_responded_calls(flow, gs) == [("on_all_responded", gs.pk, 0, 0)]
    calls = [c for c in flow.CALLS if c[0] in ("on_response", "on_all_responded")]
    assert [c[0] for c in calls] == ["on_response"] * ANSWERING + ["on_all_responded"]
    assert len({c[2] for c in calls[:-1]}) == ANSWERING  # one on_response per participant
    gs.refresh_from_db()
    assert gs.version == version + ANSWERING  # one version per answer, none lost
    snap = selectors.snapshot(gs.pk)
    assert snap["all_responded"] and snap["ready"] == ANSWERING


def test_an_advance_waits_for_answers_being_accepted(crowd, flow, staff):
    """An answer holds the group session until its transaction commits: an advance
    pressed meanwhile waits, so the answer is never accepted for a step already left."""
    gs, sessions = crowd
    accepted, advanced = threading.Event(), []

    def advance():
        accepted.wait(10)
        try:
            services.group_session_advance(group_session=gs.pk, step=0, by=staff)
            advanced.append(time.monotonic())
        finally:
            connection.close()

    thread = threading.Thread(target=advance)
    thread.start()
    with transaction.atomic():
        answers.record_response(session=sessions[0], step=0)
        accepted.set()
        time.sleep(0.3)  # the advance is blocked on the lock now
        committed = time.monotonic()
    thread.join(30)
    assert advanced and advanced[0] >= committed
    with pytest.raises(GroupError) as info:
        answers.record_response(session=sessions[1], step=0)
    assert info.value.code == "stale_step"
