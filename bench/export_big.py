"""Export benchmark: 10,000 sessions x 50 answers in PostgreSQL, timed per format.

    .venv/bin/python bench/export_big.py [--formats csv-long,csv-wide,json,psychds] [--rebuild]

Uses its own database (``<name>_bench_export`` on the server of ``DATABASE_URL``, default
postgres://postgres@127.0.0.1:5432/ensemble), builds the data once with ``bulk_create``
(reused on later runs unless ``--rebuild``), then runs each export in a fresh child process
so that the peak RSS (``resource.getrusage``) is the export's own. Prints one JSON object.
Target: every export within 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
SESSIONS, ITEMS, QUESTIONS_PER_FORM, FORMS = 10_000, 50, 10, 5
SLUG = "bench-export"


def bench_url(base: str) -> tuple[str, str]:
    parts = urlparse(base)
    name = f"{parts.path.lstrip('/') or 'ensemble'}_bench_export"
    return urlunparse(parts._replace(path=f"/{name}")), name


def ensure_database(base: str, name: str, rebuild: bool) -> None:
    import psycopg

    admin = urlunparse(urlparse(base)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{name}"')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("ENSEMBLE_VAR_DIR", str(Path(tempfile.gettempdir()) / "ensemble-bench-var"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings.base"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build() -> dict:
    """Create the experiment and its 10,000 x 50 data unless they are there already."""
    from django.core.management import call_command
    from django.db import transaction

    from runner.models import (
        DataFormat,
        Experiment,
        ExperimentXForm,
        Form,
        FormXQuestion,
        Question,
        Response,
        Session,
        Subject,
    )

    call_command("migrate", verbosity=0)
    existing = Experiment.objects.filter(slug=SLUG).first()
    if existing and Response.objects.filter(experiment=existing).count() == SESSIONS * ITEMS:
        return {"built": False, "seconds": 0.0}
    started = time.perf_counter()
    with transaction.atomic():
        if existing:
            Response.objects.filter(experiment=existing).delete()
            Session.objects.filter(experiment=existing).delete()
            existing.delete()
        exp = Experiment.objects.create(slug=SLUG, title="Export benchmark")
        fmt, _ = DataFormat.objects.get_or_create(
            signature=DataFormat.make_signature("int", [], {"min": 1, "max": 7}),
            defaults={"df_type": "int", "range": {"min": 1, "max": 7}},
        )
        forms, questions = [], []
        for f in range(FORMS):
            form = Form.objects.create(owner=exp, name=f"block-{f + 1}")
            ExperimentXForm.objects.create(experiment=exp, form=form, order=f + 1, handler="form_stimulus_s")
            for q in range(QUESTIONS_PER_FORM - 2):
                question = Question.objects.create(
                    owner=exp, key=f"b{f + 1}_q{q + 1}", text=f"Item {q + 1}?", widget="slider", data_format=fmt
                )
                FormXQuestion.objects.create(form=form, question=question, order=q + 1)
                questions.append((f, question))
            forms.append(form)
        subjects = Subject.objects.bulk_create([Subject() for _ in range(SESSIONS)], batch_size=2000)
        sessions = Session.objects.bulk_create(
            [Session(experiment=exp, subject=s, end=s.created) for s in subjects], batch_size=2000
        )
        batch: list[Response] = []
        for i, session in enumerate(sessions):
            for f, question in questions:  # 40 answers
                batch.append(
                    Response(
                        session=session,
                        subject_id=session.subject_id,
                        experiment=exp,
                        form=forms[f],
                        form_order=f + 1,
                        item=question.key,
                        question=question,
                        value=(i % 7) + 1,
                    )
                )
            for f in range(FORMS):  # 10 jsPsych trials
                for t in range(2):
                    data = {
                        "trial_type": "html-keyboard-response",
                        "trial_index": t,
                        "rt": 400 + (i * 7 + t) % 600,
                        "stimulus": f"s{t}.png",
                        "response": {"key": "f" if t else "j"},
                        "time_elapsed": 1000 * t,
                    }
                    batch.append(
                        Response(
                            session=session,
                            subject_id=session.subject_id,
                            experiment=exp,
                            form=forms[f],
                            form_order=f + 1,
                            item=f"jspsych:{t}",
                            trial_index=t,
                            jspsych_data=data,
                        )
                    )
            if len(batch) >= 10_000:
                Response.objects.bulk_create(batch)
                batch.clear()
        Response.objects.bulk_create(batch)
    return {"built": True, "seconds": round(time.perf_counter() - started, 1)}


def export_once(fmt: str) -> dict:
    """Run one export in this process and measure it."""
    from exports.services import run_export
    from runner.models import Experiment

    exp = Experiment.objects.get(slug=SLUG)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = run_export(experiment=exp, fmt=fmt, out=Path(folder) / "out.zip")
        seconds = time.perf_counter() - started
        size = result.path.stat().st_size
    rows = {f.name: f.rows for f in result.files if f.rows is not None}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "format": fmt,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "zip_mb": round(size / 2**20, 1),
        "rows": rows,
    }


def child(task: str, base: str) -> dict:
    env = dict(os.environ, DATABASE_URL=base)
    proc = subprocess.run([sys.executable, __file__, "--child", task], capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{task} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default="csv-long,csv-wide,json,psychds")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ensemble")
    if not base.startswith("postgres"):
        sys.exit("export_big needs PostgreSQL: set DATABASE_URL=postgres://...")
    url, name = bench_url(base)
    if args.child:
        setup_django(url)
        result = build() if args.child == "build" else export_once(args.child)
        print(json.dumps(result))
        return
    # This parent stays small and imports no Django: each child's getrusage peak is its own
    # (Linux keeps ru_maxrss across fork + exec, so a big parent would inflate it).
    ensure_database(base, name, args.rebuild)
    built = child("build", base)
    results = [child(fmt, base) for fmt in args.formats.split(",")]
    report = {
        "database": name,
        "sessions": SESSIONS,
        "answers_per_session": ITEMS,
        "build": built,
        "exports": results,
        "target_seconds": 60,
        "within_target": all(r["seconds"] <= 60 for r in results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
