"""Keep what a partial ``bench/run_all.py --only ...`` run did not measure.

``bench/results/`` is not in git, so a run of some benchmarks on a fresh checkout has no
results of the others; rather than drop their sections from docs/performance.md, the
new report takes them (and their target rows) from the previous docs/performance.md,
and says from which run they are.
"""

from __future__ import annotations

import re

# target rows (by the start of their name) and sections (by title) each benchmark writes
ROWS = {
    "fanout": ("fan-out",),
    "connections": ("1000 simultaneous", "RSS per held"),
    "churn": ("churn",),
    "submit": ("500 simultaneous answers",),
    "screen": ("click ->", "reload p99", "onset spread p95 at N"),
    "screen_browser": ("Chromium",),
}
SECTIONS = {
    "fanout": ("Fan-out latency",),
    "connections": ("Connections",),
    "churn": ("Churn",),
    "submit": ("Answers at once",),
    "screen_browser": ("Click -> new trial on screen, Chromium",),  # before its prefix below
    "screen": ("Click -> new trial on screen",),
}
DATE = re.compile(r"numbers below are from the run of (\d{4}-\d\d-\d\d \d\d:\d\d UTC)")


def _split(text: str) -> tuple[str, list[str], list[tuple[str, str]]]:
    """(header, target rows, [(section title, section text)])."""
    parts = re.split(r"^## ", text, flags=re.M)
    header, sections = parts[0], [(p.split("\n", 1)[0].strip(), "## " + p) for p in parts[1:]]
    targets = next((body for title, body in sections if title == "Targets"), "")
    rows = [line for line in targets.splitlines() if line.startswith("| ") and not line.startswith("| target")]
    return header, rows, [(t, b) for t, b in sections if t != "Targets"]


def _owner(name: str, table: dict) -> str | None:
    return next((key for key, starts in table.items() if any(name.startswith(s) for s in starts)), None)


def merge(new: str, old: str, measured: set[str]) -> str:
    """``new`` (the report of the benchmarks in ``measured``) with the target rows and
    sections of ``old`` that belong to benchmarks not measured in this run."""
    if not old:
        return new
    old_header, old_rows, old_sections = _split(old)
    header, rows, sections = _split(new)
    keep_rows = [r for r in old_rows if _owner(r[2:], ROWS) not in measured and _owner(r[2:], ROWS)]
    titles = {t for t, _ in sections}
    keep = [(t, b) for t, b in old_sections
            if t not in titles and _owner(t, SECTIONS) and _owner(t, SECTIONS) not in measured]  # fmt: skip
    if not keep_rows and not keep:
        return new
    when = DATE.search(old_header)
    note = f"Sections and targets not measured in this run are kept from the run of {when.group(1)}." if when else ""
    header = header.rstrip() + ("\n\n" + note if note else "")
    table = ["## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|", *keep_rows, *rows, ""]
    body = [b.rstrip() + "\n" for _, b in keep] + [b.rstrip() + "\n" for _, b in sections]
    return header.rstrip() + "\n\n" + "\n".join(table) + "\n" + "\n".join(body)
