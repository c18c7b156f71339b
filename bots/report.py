"""The rehearsal report: per step click -> screen p50/p99, onset spread, answers sent vs
stored, errors, disconnects, expectations failed; as a dict (``--json``) and as a table.
"""

from __future__ import annotations

import math
from collections import defaultdict


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``, or None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def step_rows(records: list, clicked: dict[int, float]) -> list[dict]:
    """One row per group step (click -> screen, or state -> screen without an experimenter
    of ours) and per solo form (POST -> next page on screen)."""
    rows = []
    steps = sorted({s for r in records for s in r.screens})
    for step in steps:
        since = {r.bot: clicked.get(step, r.trigger.get(step)) for r in records if step in r.screens}
        values = [r.screens[step] - since[r.bot] for r in records if step in r.screens and since[r.bot] is not None]
        measure = "click -> screen" if step in clicked else "state -> screen"
        rows.append(_row(f"step {step}", measure, values))
    by_form = defaultdict(list)
    for r in records:
        for form, seconds in r.latencies:
            by_form[form].append(seconds)
    rows += [_row(f"form {form}", "POST -> next page", v) for form, v in by_form.items()]
    return rows


def _row(label: str, measure: str, values: list[float]) -> dict:
    return {"label": label, "measure": measure, "n": len(values),
            "p50_ms": _ms(percentile(values, 0.5)), "p99_ms": _ms(percentile(values, 0.99)),
            "max_ms": _ms(max(values) if values else None)}  # fmt: skip


def onset_rows(records: list) -> list[dict]:
    """Per group step on the live page: how far apart the bots revealed it (server clock) and how late."""
    by_step = defaultdict(list)
    for r in records:
        for step, (at, late) in r.onsets.items():
            by_step[step].append((at, late))
    return [{"step": step, "n": len(v), "spread_ms": round(max(a for a, _ in v) - min(a for a, _ in v), 1),
             "late_p99_ms": round(percentile([late for _, late in v], 0.99), 1)}
            for step, v in sorted(by_step.items())]  # fmt: skip


def build(*, meta: dict, records: list, clicked: dict, stored: dict | None, extra_errors: list[str]) -> dict:
    onsets = onset_rows(records)
    statuses = defaultdict(int)
    for r in records:
        statuses[r.status] += 1
    errors = [f"bot {r.bot}: {e}" for r in records for e in r.errors] + list(extra_errors)
    expectations = [e for r in records for e in r.expectations]
    sent = sum(len(r.sent) for r in records)
    answers = {"sent": sent, **(stored or {"stored": None, "lost": None, "doubled": None})}
    ok = not expectations and not answers.get("lost") and not answers.get("doubled") and not errors
    ok = ok and statuses.get("finished", 0) == len(records)
    return {
        **meta,
        "ok": ok,
        "bots": len(records),
        "status": dict(statuses),
        "steps": step_rows(records, clicked),
        "onsets": onsets,
        "onset_spread_ms": max((o["spread_ms"] for o in onsets), default=None),
        "onset_note": "largest spread of one step's reveals" if onsets else "no onsets: the reload page has none",
        "answers": answers,
        "errors": len(errors),
        "error_samples": errors[:20],
        "disconnects": sum(r.disconnects for r in records),
        "drops": sum(r.drops for r in records),
        "dropped_out": sum(r.dropped_out for r in records),  # declared by the server (its dropout policy)
        "dropped_bots": sorted(r.bot for r in records if r.drops),
        "flagged_bots": sorted(r.bot for r in records if r.dropped_out),
        "rate_limited": sum(r.rate_limited for r in records),
        "http_retries": sum(r.http_retries for r in records),
        "expectations_failed": expectations,
    }


def table(report: dict) -> str:
    """The report as text for a terminal."""
    head = (f"{report['bots']} bots on {report['experiment']} ({report['script']}, group page: "
            f"{report['group_page']}) against {report['url']} in {report['seconds']:.1f} s")  # fmt: skip
    lines = [head, "status: " + ", ".join(f"{k} {v}" for k, v in sorted(report["status"].items())), ""]
    lines.append(f"{'':24}{'measure':20}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for row in report["steps"]:
        cells = [f"{row[k]:>10}" if row[k] is not None else f"{'-':>10}" for k in ("p50_ms", "p99_ms", "max_ms")]
        lines.append(f"{row['label'][:23]:24}{row['measure']:20}{row['n']:>6}{''.join(cells)}")
    a = report["answers"]
    lines += ["", f"answers: sent {a['sent']}, stored {a['stored']}, lost {a['lost']}, doubled {a['doubled']}"]
    spread = report["onset_spread_ms"]
    lines.append(f"onset spread: {spread if spread is not None else 'n/a'} ({report['onset_note']})")
    if a.get("played_by_bot"):
        lines.append(f"answered by stand-in bots (dropout policy bot): {a['played_by_bot']}")
    lines.append(f"errors: {report['errors']}, disconnects: {report['disconnects']}, drops: {report['drops']} "
                 f"(declared dropped out: {report.get('dropped_out', 0)}), "
                 f"HTTP retries: {report['http_retries']}, participant codes refused 429 (retried): "
                 f"{report['rate_limited']}")  # fmt: skip
    lines += [f"  {e}" for e in report["error_samples"][:10]]
    if report.get("advanced_anyway"):
        lines.append(f"advanced anyway (other runs were silent) at steps {report['advanced_anyway']}")
    lines.append(f"expectations failed: {len(report['expectations_failed'])}")
    lines += [f"  {e}" for e in report["expectations_failed"][:10]]
    lines.append("OK" if report["ok"] else "NOT OK")
    return "\n".join(lines)
