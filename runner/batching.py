"""Answers that arrive together, stored by one transaction.

When the experimenter advances a live group, every participant answers within the same
second or two. Stored one by one, each answer is its own transaction: about ten
statements, a commit, and the group session's row lock held until that commit, so the
answers of a group queue behind each other (bench/analysis.md: 500 answers at once took
p99 5-8 s, nearly all of it statements and commits). Here the answers of one
experiment that are waiting at the same moment in one server process are stored
together (:func:`submit_batch`): their runs locked in one statement, the lockstep
positions read in one, the group session locked, read and written once
(``Outcome.batch_step``), every row in one INSERT, every run in one UPDATE, one commit.

Who runs a batch (:class:`Combiner`): the first answer to arrive runs its own at once,
a batch of one (so a lone answer waits for nobody); the answers that arrive while it
runs queue up and go together as the next batch, run by one of their own request
threads. Nothing is ever delayed on purpose: batches are as large as the load makes them.

Each answer keeps what storing it alone would give it: the same checks, results and
refusals (a stale, invalid or refused answer stores nothing of its own and the others
are stored), and any answer the batch cannot take the same way is stored alone after
it: one with personal fields, an emailed link or a visit that stays on screen, a second
POST of the same run in the batch, or every answer of a batch that failed unexpectedly
(a callback raising while entering the next visit, a database error), whose
transaction is rolled back first, so nothing of it remains.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction

from project.core.rows import Select, pipelined, save_fields
from runner import selectors, services
from runner.errors import NoRunError, RunError
from runner.handlers import get_handler
from runner.models import Response, Session

logger = logging.getLogger("runner.batching")

#: A batch's result for an answer it did not store: store it alone (``submit_form``).
ALONE = "alone"
#: The run fields an answer changes (``take`` / ``move_on``), saved for a batch in one UPDATE.
SESSION_FIELDS = ["state", "current_order", "end", "timezone", "clock_offset_ms"]


def submit(submission: services.Submission, *, key) -> services.SubmitResult:
    """Store ``submission`` with the other answers of ``key`` (an experiment) waiting in
    this process (``key=None``: alone); the same result, or exception, as
    ``services.submit_form``."""
    if key is None or not getattr(settings, "RUN_ANSWER_BATCH", True):
        return services.submit(submission)
    result = COMBINER.submit(key, submission)
    if result == ALONE:
        return services.submit(submission)
    if isinstance(result, BaseException):
        raise result
    return result


def submit_batch(submissions: list[services.Submission]) -> list:
    """Store many answers in one transaction. For each: a ``SubmitResult``, the exception
    storing it alone would raise (a refusal), or :data:`ALONE`."""
    results: list = [ALONE] * len(submissions)
    try:
        with transaction.atomic():
            _store(submissions, results)
    except Exception as exc:  # rolled back: each is stored alone, as if there had been no batch
        logger.warning("A batch of %d answers was rolled back (%s); storing them one by one.",
                       len(submissions), type(exc).__name__)  # fmt: skip
        return [ALONE] * len(submissions)
    return results


def _locked_runs(submissions: list[services.Submission]):
    """Send the statement that locks the batch's runs, each named by its id or by its
    run cookie's token (within the answer's experiment), in id order: as every batch and
    every answer alone lock runs (then the group session)."""
    ids = sorted({s.session_id for s in submissions if s.session_id is not None})
    tokens: dict[int, set[str]] = {}
    for s in submissions:
        if s.session_id is None and s.run_token and s.experiment_id is not None:
            tokens.setdefault(s.experiment_id, set()).add(s.run_token)
    shape = (len(ids), tuple(len(t) for t in tokens.values()))
    params = [*ids]
    for experiment, named in tokens.items():
        params += [*sorted(named), experiment]
    return _runs_select(shape).send(*params)


@lru_cache(maxsize=256)
def _runs_select(shape: tuple[int, tuple[int, ...]]) -> Select:
    """The locking ``Select`` of runs for ``shape``: (how many ids, how many tokens per experiment)."""
    ids, tokens = shape
    marks = lambda n: ", ".join(["%s"] * n)  # noqa: E731
    named = [f't0."id" IN ({marks(ids)})'] if ids else []
    named += [f'(t0."run_token" IN ({marks(n)}) AND t0."experiment_id" = %s)' for n in tokens]
    where = f'({" OR ".join(named) or "1 = 0"}) ORDER BY t0."id"'
    return Select(Session, related=("experiment",), where=where, lock="FOR UPDATE OF t0")


def _store(submissions: list[services.Submission], results: list) -> None:
    """Lock the batch's runs, take each answer in memory, then write them all at once."""
    positions, questions = _Cache(selectors.positions), _Cache(selectors.form_questions)
    runs = _read_runs(submissions, positions)
    taken = _take_all(submissions, results, runs, positions, questions)
    checked = _check_steps(taken, results)
    for index, one in taken.items():
        services.move_on(one, submissions[index].data)
    _write(taken, checked)
    for index, one in taken.items():
        for call in one.outcome.before_commit:
            call()
        results[index] = services.SubmitResult("stored")


def _read_runs(submissions: list[services.Submission], positions: _Cache) -> dict[int, Session]:
    """The batch's runs, locked, by id; and their experiment's forms into ``positions``."""
    experiments = {s.experiment_id for s in submissions}
    known = experiments.pop() if len(experiments) == 1 else None  # the answers' experiment, if the view said
    with pipelined():  # the runs and their experiment's forms in one round trip
        runs = _locked_runs(submissions)
        forms = selectors.positions_of(known) if known is not None else None
        runs = {run.pk: run for run in runs()}
        if forms is not None:
            positions.found[known] = forms()
    _preload(runs.values(), positions)
    return runs


def _take_all(submissions, results: list, runs: dict[int, Session], positions, questions) -> dict[int, services.Taken]:
    """``services.take`` for each answer of a run found (one per run): the batchable ones
    by index; the others' results (refusals, stale, invalid...) go into ``results``."""
    by_token = {(run.experiment_id, run.run_token): run for run in runs.values()}
    taken: dict[int, services.Taken] = {}
    seen = set()
    for index, submission in enumerate(submissions):
        if submission.session_id is None:
            run = by_token.get((submission.experiment_id, submission.run_token))
            if run is None:  # the cookie names no run of this experiment
                results[index] = NoRunError.in_this_browser()
                continue
        else:
            run = runs.get(submission.session_id)
        if run is None or run.pk in seen:  # gone, or a second POST of the run: alone, after this batch
            continue
        seen.add(run.pk)
        try:
            outcome = services.take(run, submission, positions=positions(run.experiment), questions=questions)
        except RunError as exc:  # the handler refused it (stale step, ...): nothing of it is written
            results[index] = exc
            continue
        if isinstance(outcome, services.SubmitResult):
            results[index] = outcome  # stale, duplicate, invalid
        elif _batchable(outcome.outcome):
            taken[index] = outcome
    return taken


def _write(taken: dict[int, services.Taken], checked: list) -> None:
    """The answers' rows, their runs and the batch steps' writes, then the steps' hooks."""
    with pipelined():  # rows, runs and the group writes in one round trip
        Response.objects.bulk_create([row for one in taken.values() for row in one.rows], ignore_conflicts=True)
        save_fields([one.session for one in taken.values()], SESSION_FIELDS, count=False)
        for step in checked:
            step.write()
    for step in checked:  # hooks run outside the pipeline: their errors raise where they happen
        step.announce()


def _batchable(outcome) -> bool:
    """Stored the same way inside a batch: no personal fields, no email, moves on."""
    return not (outcome.subject_fields or outcome.verify_email or outcome.stay)


def _check_steps(taken: dict, results: list) -> list:
    """Each batch step once for all its answers; refused answers leave ``taken``."""
    by_key: dict = {}
    for index, one in taken.items():
        step = one.outcome.batch_step
        if step is not None:
            by_key.setdefault((step.key, step.check), []).append(index)
    checked = []
    for (_, check), indexes in by_key.items():
        outcome = check([taken[i].outcome.batch_step.item for i in indexes])
        for index, refusal in zip(indexes, outcome.refusals, strict=True):
            if refusal is not None:
                results[index] = taken.pop(index).outcome.batch_step.refuse(refusal)
        checked.append(outcome)
    return checked


def _preload(runs, positions) -> None:
    """Let each handler read for all its answers at once (``BaseHandler.preload``)."""
    by_handler: dict = {}
    for run in runs:
        current = run.state.get("current") or {}
        if run.state.get("finished") or not isinstance(current.get("order"), int):
            continue  # nothing on screen to answer: take() says so
        position = selectors.position_at(positions(run.experiment), current["order"])
        if position is not None:
            by_handler.setdefault(type(get_handler(position.handler)), []).append(run)
    for handler, sessions in by_handler.items():
        handler.preload(sessions)


class _Cache:
    """``read(model)`` once per model instance (by primary key) within a batch."""

    def __init__(self, read):
        self.read, self.found = read, {}

    def __call__(self, instance):
        if instance.pk not in self.found:
            self.found[instance.pk] = self.read(instance)
        return self.found[instance.pk]


@dataclass
class _Job:
    submission: services.Submission
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    lead: bool = False  # woken to run the next batch, not with a result


class Combiner:
    """Batches of the answers waiting for the same key (see the module's docstring)."""

    def __init__(self, run=None, max_size: int | None = None):
        self.run = run or submit_batch
        self.max_size = max_size
        self._lock = threading.Lock()
        self._waiting: dict = {}  # key -> [_Job]
        self._leading: set = set()  # keys whose batches a thread is running

    def submit(self, key, submission):
        job = _Job(submission)
        with self._lock:
            self._waiting.setdefault(key, []).append(job)
            lead = key not in self._leading
            self._leading.add(key)
        if not lead:
            _release_connection()  # the leader writes; a waiting request holds no pool slot
            job.done.wait()
            if not job.lead:
                return job.result
        # This thread leads: its answer is first in line, so in this batch.
        batch = self._take(key)
        results = [ALONE] * len(batch)
        try:
            results = self.run([j.submission for j in batch])
        finally:  # whatever happens, nobody is left waiting
            for other, result in zip(batch, results, strict=True):
                other.result = result
                if other is not job:
                    other.done.set()
            self._hand_over(key)
        return job.result

    def _take(self, key) -> list[_Job]:
        size = self.max_size or getattr(settings, "RUN_ANSWER_BATCH_MAX", 200)
        with self._lock:
            waiting = self._waiting[key]
            batch, self._waiting[key] = waiting[:size], waiting[size:]
        return batch

    def _hand_over(self, key) -> None:
        """This thread's answer is done: the next batch is run by a waiting answer's thread."""
        with self._lock:
            waiting = self._waiting.get(key)
            if not waiting:
                self._waiting.pop(key, None)
                self._leading.discard(key)
                return
            waiting[0].lead = True
            waiting[0].done.set()


def _release_connection() -> None:
    """Give this thread's database connection back (to the pool) while it waits."""
    if not connection.in_atomic_block:
        connection.close()


COMBINER = Combiner()
