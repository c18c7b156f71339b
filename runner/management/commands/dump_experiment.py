"""manage.py dump_experiment SLUG [--out FILE]: write an experiment's definition file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from runner.definitions import dump_experiment
from runner.models import Experiment


class Command(BaseCommand):
    help = "Write an experiment's definition (YAML) to stdout or to --out FILE; load_experiment reads it back."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", help="file to write (replaced atomically); default: stdout")

    def handle(self, *args, **options):
        try:
            experiment = Experiment.objects.get(slug=options["slug"])
        except Experiment.DoesNotExist:
            raise CommandError(f"no experiment with slug {options['slug']!r}") from None
        text = dump_experiment(experiment)
        if not options["out"]:
            self.stdout.write(text, ending="")
            return
        out = Path(options["out"])
        if not out.parent.is_dir():
            raise CommandError(f"folder {str(out.parent)!r} does not exist")
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, out)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise CommandError(f"cannot write {out}: {exc}") from None
        self.stdout.write(f"wrote {out}")
