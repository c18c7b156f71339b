"""manage.py load_experiment FILE.yaml: create or update an experiment from a definition file."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from runner.definitions import DefinitionError, load_file


class Command(BaseCommand):
    help = (
        "Create or update an experiment from a definition file (YAML). A file whose slug exists updates "
        "that experiment. Every error is printed as FILE:LINE: message; then nothing is changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="definition file (YAML)")
        parser.add_argument(
            "--create-only", action="store_true", help="refuse to update an experiment whose slug already exists"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="change the form sequence even though some sessions are unfinished",
        )

    def handle(self, *args, **options):
        path = options["file"]
        try:
            result = load_file(path=path, create_only=options["create_only"], force=options["force"])
        except DefinitionError as exc:
            for warning in exc.warnings:
                self.stderr.write(warning.format(path))
            for issue in exc.issues:
                self.stderr.write(issue.format(path))
            count = len(exc.issues)
            raise CommandError(f"{path}: {count} error{'s' if count != 1 else ''}; nothing was changed") from None
        for warning in result.warnings:
            self.stderr.write(warning.format(path))
        experiment = result.experiment
        self.stdout.write(f"{experiment.pk} {experiment.slug} ({result.status})")
