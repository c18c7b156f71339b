"""Timer precision (issue 20): fired-at minus deadline over many group timers.

Starts ``--processes`` real server processes (daphne, ``asgi:application``: each runs
its scheduler, ``groups/timers.py``) on the bench database, arms ``--timers`` timers
due between ``--lead`` and ``--lead + --spread`` seconds from now (several per
deadline, as the timers of many groups that started together), waits until all fired,
and prints JSON: lateness percentiles in ms, how many each process fired, and whether
any fired twice (a step-log row per firing).

    python -m bench.timers                 # PostgreSQL + a private Redis, 2 processes, 200 timers
    python -m bench.timers --embedded      # SQLite, one process
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter

from bench import common


def _setup_django(env: dict) -> None:
    for key in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "ENSEMBLE_VAR_DIR"):
        os.environ[key] = env[key]
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def _group_session():
    from datetime import timedelta

    from django.utils import timezone

    from groups.models import GroupSession
    from runner.models import Experiment

    experiment, _ = Experiment.objects.get_or_create(
        slug="bench-timers", defaults={"title": "Timers", "is_group": True}
    )
    return GroupSession.objects.create(
        experiment=experiment, participant_code="TMRP", experimenter_code="TMRE",
        expires=timezone.now() + timedelta(hours=1),
    )  # fmt: skip


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(count: int, lead: float, spread: float, per_deadline: int) -> dict:
    from groups import timers
    from groups.models import StepLog, Timer

    gs = _group_session()
    start = timers.now_ms() + int(lead * 1000)
    deadlines = max(1, count // per_deadline)
    step = int(spread * 1000 / deadlines)
    Timer.objects.bulk_create(
        Timer(group_session=gs, kind=timers.PROBE, key=str(i), due_ms=start + (i % deadlines) * step)
        for i in range(count)
    )
    deadline = time.monotonic() + lead + spread + 30
    pending = Timer.objects.filter(group_session=gs, fired_ms__isnull=True)
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    fired = list(Timer.objects.filter(group_session=gs, fired_ms__isnull=False))
    late = [t.fired_ms - t.due_ms for t in fired]
    firings = Counter(p.data["timer"] for p in StepLog.objects.filter(group_session=gs, action="timer_probe"))
    return {
        "timers": count,
        "fired": len(fired),
        "fired_twice": sum(1 for n in firings.values() if n > 1),
        "late_ms": {
            "p50": _percentile(late, 0.5),
            "p99": _percentile(late, 0.99),
            "max": max(late),
            "min": min(late),
        } if late else None,
        "fired_by_process": sorted(Counter(t.fired_by for t in fired).values(), reverse=True),
    }  # fmt: skip


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timers", type=int, default=200)
    parser.add_argument("--processes", type=int, default=None, help="server processes (default 2; 1 embedded)")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds from now to the first deadline")
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which the deadlines are spread")
    parser.add_argument("--per-deadline", type=int, default=4, help="timers that share each deadline")
    parser.add_argument("--embedded", action="store_true", help="SQLite and no Redis")
    args = parser.parse_args(argv)
    processes = args.processes or (1 if args.embedded else 2)
    redis = None if args.embedded else common.PrivateRedis().start()
    env = common.server_env(embedded=args.embedded)
    env["GROUP_TIMERS"] = "1"
    common.ensure_database(env)
    servers = [common.Daphne(env) for _ in range(processes)]
    try:
        _setup_django(env)
        result = measure(args.timers, args.lead, args.spread, args.per_deadline)
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.stop()
    database = "sqlite" if args.embedded else "postgresql"
    return {"bench": "timers", "database": database, "processes": processes, **result}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
