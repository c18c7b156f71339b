"""manage.py seed_demo: load the demo experiments (experiments/demo/*.yaml). Safe to run again."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from runner.definitions import DefinitionError, load_file

DEMO_DIR = Path(settings.BASE_DIR) / "experiments" / "demo"


class Command(BaseCommand):
    help = "Load every experiments/demo/*.yaml (created, updated or unchanged); all files or none."

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=str(DEMO_DIR), help="folder of definition files")

    def handle(self, *args, **options):
        folder = Path(options["dir"])
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise CommandError(f"no *.yaml files in {folder}")
        try:
            with transaction.atomic():
                results = [(path, load_file(path=path)) for path in files]
        except DefinitionError as exc:
            for line in exc.lines():
                self.stderr.write(line)
            raise CommandError("the demo experiments were not loaded; nothing was changed") from None
        for path, result in results:
            for warning in result.warnings:
                self.stderr.write(warning.format(str(path)))
            experiment = result.experiment
            self.stdout.write(f"{result.status}: {experiment.slug} (id {experiment.pk}) from {path.name}")
