"""Shared helpers of the definition, command and editor tests."""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps

HERE = Path(__file__).parent
BAD_DIR = HERE / "bad_definitions"
GOOD_DIR = HERE / "good_definitions"
DEMO_DIR = HERE.parent.parent / "experiments" / "demo"
BAD_FILES = sorted(BAD_DIR.glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+): (.+)$")


def expectations(path: Path) -> list[tuple[int, str]]:
    """The ``# expect: LINE: text`` lines at the top of a bad definition file."""
    found = []
    for line in path.read_text().splitlines():
        match = EXPECT.match(line)
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return found


def table_counts() -> dict[str, int]:
    """Row counts of every table of the runner and groups apps (to prove nothing changed)."""
    return {
        model._meta.label: model.objects.count()
        for app in ("runner", "groups")
        for model in apps.get_app_config(app).get_models()
    }


def missing_expectations(path: Path, lines: list[str]) -> list[tuple[int, str]]:
    """Expectations of ``path`` not met by any ``FILE:LINE: message`` in ``lines``."""
    return [
        (line, text)
        for line, text in expectations(path)
        if not any(out.startswith(f"{path}:{line}: ") and text in out for out in lines)
    ]
