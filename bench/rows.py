"""project.core.rows against the ORM, query by query, in the same run.

    .venv/bin/python bench/rows.py [--calls 200] [--rounds 5]

For each statement that ``project.core.rows`` builds for a caller (the same ``Select`` /
``save_fields`` object the caller uses), times the ORM query that loads the same rows
(``select_related``, ``select_for_update(of=("self",))``, ``bulk_update``) and the rows.py
one, alternating ``--rounds`` times ``--calls`` calls each, inside one transaction (the
locks are taken as in a request). Each side's figure is the median round, per call, in
microseconds of wall time and of this process's CPU time; ``ratio`` is ORM / rows (above
1: rows.py is faster). The results of both sides are compared once before timing.

Uses a throwaway test database (``project.settings.test``: PostgreSQL when
``DATABASE_URL`` says so, else SQLite) with a small experiment: 10 forms of 10 questions,
8 runs in one group session. Prints one JSON object. Bounded: the defaults take a few
seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS, FORMS, QUESTIONS = 8, 10, 10


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.test")
    import django

    django.setup()


def build() -> dict:
    """The experiment, its runs and their group session; what the cases look up."""
    from groups.models import Membership
    from tests import factories as f

    experiment = f.ExperimentFactory(is_group=True, params={"n": 3}, data_policy={"default": "keep"})
    for order in range(1, FORMS + 1):
        link = f.ExperimentXFormFactory(experiment=experiment, order=order)
        for q in range(1, QUESTIONS + 1):
            f.FormXQuestionFactory(form=link.form, order=q)
    runs = [f.SessionFactory(experiment=experiment, state={"current": {"order": 1}}) for _ in range(RUNS)]
    group_session = f.GroupSessionFactory(experiment=experiment)
    for i, run in enumerate(runs):
        Membership.objects.create(group_session=group_session, session=run, pseudonym=f"p{i}")
    return {"experiment": experiment, "runs": runs, "group_session": group_session}


def cases(world: dict) -> dict:
    """name -> (ORM call, rows.py call), each returning model instances."""
    from groups import selectors as group_selectors
    from groups import services as group_services
    from groups.models import GroupSession, Membership
    from project.core.rows import save_fields, select_in
    from runner import batching, selectors, services
    from runner.models import ExperimentXForm, FormXQuestion, Session
    from runner.run_cookie import session_by_token

    experiment, runs, gs = world["experiment"], world["runs"], world["group_session"]
    run, form = runs[0], selectors.positions(experiment)[0].form
    ids = [r.pk for r in runs]
    sessions = Session.objects.select_related("experiment")
    memberships = Membership.objects.select_related("group_session")
    return {
        "run_by_token (runner.run_cookie)": (
            lambda: sessions.filter(run_token=run.run_token, experiment_id=experiment.pk).order_by("-start").first(),
            lambda: session_by_token(run.run_token, experiment.pk),
        ),
        "positions (runner.selectors)": (
            lambda: list(
                ExperimentXForm.objects.select_related("form").filter(experiment=experiment).order_by("order")
            ),
            lambda: selectors.positions(experiment),
        ),
        "form_questions (runner.selectors)": (
            lambda: list(
                FormXQuestion.objects.select_related("question", "question__data_format")
                .filter(form_id=form.pk)
                .order_by("order")
            ),
            lambda: selectors.form_questions(form),
        ),
        "locked_run (runner.services)": (
            lambda: sessions.select_for_update(of=("self",)).get(pk=run.pk),
            lambda: services._lock_session(run.pk),
        ),
        "locked_runs_of_a_batch (runner.batching)": (
            lambda: list(sessions.select_for_update(of=("self",)).filter(pk__in=ids).order_by("id")),
            lambda: batching._runs_select((len(ids), ())).all(*ids),
        ),
        "save_fields of a batch (runner.batching)": (
            lambda: Session.objects.bulk_update(runs, batching.SESSION_FIELDS),
            lambda: save_fields(runs, batching.SESSION_FIELDS),
        ),
        "membership (groups.selectors)": (
            lambda: memberships.filter(session_id=run.pk).first(),
            lambda: group_selectors._MEMBERSHIP.first(run.pk),
        ),
        "memberships_in (groups.selectors, select_in)": (
            lambda: list(memberships.filter(session_id__in=ids)),
            lambda: select_in(Membership, "session_id", len(ids), related=("group_session",)).all(*ids),
        ),
        "locked_group_session (groups.services)": (
            lambda: (
                GroupSession.objects.select_related("experiment")
                .select_for_update(of=("self",), no_key=True)
                .get(pk=gs.pk)
            ),
            lambda: group_services._LOCKED.get(gs.pk),
        ),
    }


def _values(found) -> list:
    """What a result loaded: each instance's columns and its cached related rows' columns."""
    if found is None or isinstance(found, int):
        return [found]
    rows = found if isinstance(found, list) else [found]
    out = []
    for row in sorted(rows, key=lambda r: r.pk):
        cached = {name: _columns(rel) for name, rel in row._state.fields_cache.items()}
        out.append((_columns(row), cached))
    return out


def _columns(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _round(call, calls: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call()
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def measure(orm, rows, *, calls: int, rounds: int) -> dict:
    """Median per-call wall and CPU microseconds of each side, rounds alternating."""
    orm(), rows()  # warm: the rows.py statement is compiled at its first call
    results: dict[str, list] = {"orm": [], "rows": []}
    for _ in range(rounds):
        results["orm"].append(_round(orm, calls))
        results["rows"].append(_round(rows, calls))
    med = {side: [statistics.median(r[i] for r in found) for i in (0, 1)] for side, found in results.items()}
    return {
        "orm_us": round(med["orm"][0], 1),
        "rows_us": round(med["rows"][0], 1),
        "ratio": round(med["orm"][0] / med["rows"][0], 2),
        "orm_cpu_us": round(med["orm"][1], 1),
        "rows_cpu_us": round(med["rows"][1], 1),
        "cpu_ratio": round(med["orm"][1] / max(med["rows"][1], 1e-9), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    setup_django()
    from django.db import connection, transaction
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False)
    try:
        with transaction.atomic():
            world = build()
            report = {"database": connection.vendor, "calls": args.calls, "rounds": args.rounds, "queries": {}}
            for name, (orm, rows) in cases(world).items():
                if name.startswith("save_fields"):
                    assert orm() == rows() == RUNS, name  # both change every row
                else:
                    assert _values(orm()) == _values(rows()), f"{name}: rows.py and the ORM load different rows"
                report["queries"][name] = measure(orm, rows, calls=args.calls, rounds=args.rounds)
            transaction.set_rollback(True)
    finally:
        teardown_databases(old, verbosity=0)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
