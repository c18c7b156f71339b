"""``manage.py export --experiment SLUG --format json|csv-long|csv-wide|psychds --out PATH``."""

from __future__ import annotations

import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from exports import columns as registry
from exports.models import ExportPreset
from exports.services import FORMATS, ExportError, run_export
from runner.models import Experiment


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [n.strip() for n in text.split(",") if n.strip()]


class Command(BaseCommand):
    help = (
        "Export an experiment's data as a zip (json, csv-long, csv-wide or psychds). Preview and excluded "
        "sessions are left out unless asked for; identifying columns only when named with --identifying."
    )

    def add_arguments(self, parser):
        parser.add_argument("--experiment", required=True, help="Experiment slug.")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--out", required=True, help="A .zip path, or an existing folder to write into.")
        parser.add_argument("--include-preview", action="store_true", help="Include experimenters' previews.")
        parser.add_argument("--include-bots", action="store_true", help="Include bot sessions (run_bots, rehearsals).")
        parser.add_argument("--include-excluded", action="store_true", help="Include excluded sessions.")
        parser.add_argument("--finished-only", action="store_true", help="Only sessions that reached the end.")
        parser.add_argument(
            "--identifying",
            help=f"Comma-separated identifying columns to add ({', '.join(registry.identifying_names())}); "
            "the file is then marked identifiable and the export is audited.",
        )
        parser.add_argument("--columns", help="Comma-separated columns (default: the registry's defaults).")
        parser.add_argument("--preset", help="Name of a saved export preset of this experiment.")
        parser.add_argument("--user", help="Experimenter username recorded in the audit log.")

    def handle(self, *args, experiment, fmt, out, **opts):
        exp = Experiment.objects.filter(slug=experiment).first()
        if exp is None:
            raise CommandError(f"no experiment with slug {experiment!r}")
        columns, filters = _choices(exp, opts)
        user = _user(opts["user"])
        try:
            result = run_export(
                experiment=exp,
                fmt=fmt,
                out=out,
                columns=columns,
                identifying=_names(opts["identifying"]),
                filters=filters,
                user=user,
                who=user.username if user else f"command line ({getpass.getuser()})",
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        self._report(result)

    def _report(self, result) -> None:
        """What was written: the file, each entry's rows and bytes, an identifiable export's warning."""
        self.stdout.write(f"Wrote {result.path} ({result.format}; {result.sessions} sessions, "
                          f"{result.participants} participants)")  # fmt: skip
        for info in result.files:
            rows = "" if info.rows is None else f"{info.rows} rows, "
            self.stdout.write(f"  {info.name}: {rows}{info.bytes} bytes")
        if result.identifying:
            self.stdout.write(
                self.style.WARNING(f"Identifiable export: {', '.join(result.identifying)} (recorded in the audit log)")
            )


def _choices(exp: Experiment, opts) -> tuple[list[str] | None, dict]:
    """The columns and filters asked for, completed by the named preset when there is one."""
    columns = _names(opts["columns"])
    filters = {
        "include_preview": opts["include_preview"],
        "include_bots": opts["include_bots"],
        "include_excluded": opts["include_excluded"],
        "finished_only": opts["finished_only"],
    }
    if opts["preset"]:
        preset = ExportPreset.objects.filter(experiment=exp, name=opts["preset"]).first()
        if preset is None:
            names = ", ".join(exp.export_presets.values_list("name", flat=True)) or "none saved"
            raise CommandError(f"no preset {opts['preset']!r} for {exp.slug} (presets: {names})")
        columns = columns or preset.columns or None
        filters = {k: v or bool(preset.filters.get(k)) for k, v in filters.items()}
    return columns, filters


def _user(username: str | None):
    """The user an export is recorded for (None when not named)."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user {username!r}")
    return user
