"""``manage.py run_bots --experiment SLUG --count N [--url BASE_URL] [--group-session ID |
--start-group] [--advance auto|start|manual] [--think MIN-MAX] [--drop-rate P] [--bots MODULE]
[--seed N] [--timeout S] [--join link|code] [--json]``: N bots play the experiment through the real HTTP and
socket protocol; prints the report (docs/bots.md). Exit code 1 on a failed expectation,
a lost or doubled answer, an error or a bot that did not finish.

The set-up (tickets, group session, the rehearsal experimenter, the bot token) and the
check of stored answers use this project's database: ``--url`` is a server of the same
deployment (another process, another port, the public address).
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from bots.rehearsal import Plan, RehearsalError, rehearse


def think_range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise CommandError(f"--think takes MIN-MAX seconds (e.g. 0.5-2), not {text!r}") from None
    if not 0 <= pair[0] <= pair[1] <= 3600:
        raise CommandError(f"--think: need 0 <= MIN <= MAX <= 3600, not {text!r}")
    return pair


class Progress:
    """A one-line progress bar on a terminal (stderr)."""

    def __init__(self, stream, total: int):
        self.stream, self.total = stream, total

    def __call__(self, records: list) -> None:
        done = sum(1 for r in records if r.status in ("finished", "failed", "stopped"))
        sent = sum(len(r.sent) for r in records)
        width = 30
        filled = int(width * done / max(self.total, 1))
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} bots done, {sent} answers")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()


class Command(BaseCommand):
    help = "Run N bots (scripted participants) through an experiment and print the rehearsal report."

    def add_arguments(self, parser):
        parser.add_argument("--experiment", required=True, metavar="SLUG")
        parser.add_argument("--count", type=int, required=True, metavar="N")
        parser.add_argument("--url", default="http://127.0.0.1:8000", metavar="BASE_URL",
                            help="the server (several, comma-separated: processes of one deployment)")  # fmt: skip
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--group-session", type=int, metavar="ID", help="join this group session")
        where.add_argument("--start-group", action="store_true", help="start a new group session (the default)")
        parser.add_argument("--advance", choices=("auto", "start", "manual"), default="auto",
                            help="auto: start and advance; start: only start (auto_advance moves on)")  # fmt: skip
        parser.add_argument("--join", choices=("link", "code"), default="link",
                            help="group bots open the group session's link, or type its participant code")  # fmt: skip
        parser.add_argument("--think", type=think_range, default=(0.0, 0.0), metavar="MIN-MAX")
        parser.add_argument("--drop-rate", type=float, default=0.0, metavar="P")
        parser.add_argument("--drop-seconds", type=think_range, default=(1.0, 3.0), metavar="MIN-MAX",
                            help="how long a dropped bot stays away (s)")  # fmt: skip
        parser.add_argument("--bots", metavar="MODULE", help="bots module (default: <package>.bots if it exists)")
        parser.add_argument("--seed", type=int, help="seed of the bots' random answers")
        parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for the group (s)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **o):
        if not 0 <= o["drop_rate"] <= 1:
            raise CommandError(f"--drop-rate is a probability (0..1), not {o['drop_rate']}")
        urls = [u.strip().rstrip("/") for u in o["url"].split(",")]
        if not all(u.startswith(("http://", "https://")) for u in urls):
            raise CommandError(f"--url must start with http:// or https://, not {o['url']!r}")
        plan = Plan(experiment=o["experiment"], count=o["count"], url=",".join(urls),
                    group_session=o["group_session"], start_group=o["start_group"], advance=o["advance"],
                    think=o["think"], drop_rate=o["drop_rate"], drop_seconds=o["drop_seconds"], bots_module=o["bots"],
                    timeout=o["timeout"], seed=o["seed"], join=o["join"])  # fmt: skip
        progress = Progress(sys.stderr, plan.count) if sys.stderr.isatty() else None
        try:
            result = rehearse(plan, progress)
        except RehearsalError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2) if o["json"] else report_text(result))
        if not result["ok"]:
            sys.exit(1)


def report_text(result: dict) -> str:
    from bots.report import table

    return table(result)
