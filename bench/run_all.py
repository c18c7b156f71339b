"""Run every socket/answer benchmark and write docs/performance.md and docs/performance.png.

    make bench                      # = .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py [--quick] [--only fanout,connections,...]

Each benchmark runs in its own process and prints JSON; the raw results go to
``bench/results/latest.json``. Default sizes keep ``make bench`` under ~30 minutes on a
2-core machine: fan-out at N = 10, 100, 500, 1000 (10 advances, every variant), the same
across two processes at 500 and 1000, 1000 held connections and connect bursts, churn
with 300 broadcasts at N = 500 (``bench/churn.py --broadcasts 10000`` is the full run;
its JSON in ``bench/results/churn_full.json`` is reported too when present), 500
answers at once, click -> new trial on screen at N = 10, 100, 200, 500 (the live page's
protocol clients and a reload) against the floor, a plain GET and oTree (``bench/screen.py``;
its first run creates ``bench/.otree-venv``), and 8 live pages in Chromium over 10 steps
(``bench/screen_browser.py``).
``bench/export_big.py`` (exports) is separate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report_merge, screen_report  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
PY = sys.executable

TARGETS = {
    "fanout_p99_vs_floor_500": 3.0,
    "fanout_p99_vs_stock_500": 0.5,
    "fanout_p99_1000_ms": 250.0,
    "connect_burst_s": 5.0,
    "rss_per_connection_kib": 150.0,
    "submit_p99_ms": 2000.0,
}  # issue 16's (the live page): bench/screen_report.py TARGETS


def plan(quick: bool) -> dict[str, list[str]]:
    if quick:
        return {
            "fanout": ["bench/fanout.py", "--sizes", "10,100", "--advances", "5"],
            "fanout_2proc": [
                "bench/fanout.py",
                "--sizes",
                "100",
                "--advances",
                "5",
                "--variants",
                "ours",
                "--processes",
                "2",
            ],
            "connections": ["bench/connections.py", "--n", "200"],
            "churn": ["bench/churn.py", "--broadcasts", "50", "--n", "100"],
            "submit": ["bench/submit.py", "--n", "100"],
            "submit_2proc": ["bench/submit.py", "--n", "100", "--processes", "2"],
            "screen": ["bench/screen.py", "--sizes", "10,50", "--steps", "5"],
            "screen_browser": ["bench/screen_browser.py", "--pages", "4", "--steps", "4"],
        }
    return {
        "fanout": ["bench/fanout.py", "--sizes", "10,100,500,1000", "--advances", "10"],
        "fanout_2proc": [
            "bench/fanout.py",
            "--sizes",
            "500,1000",
            "--advances",
            "10",
            "--variants",
            "ours",
            "--processes",
            "2",
        ],
        "connections": ["bench/connections.py", "--n", "1000"],
        "churn": ["bench/churn.py", "--broadcasts", "300", "--n", "500"],
        "submit": ["bench/submit.py", "--n", "500"],
        "submit_2proc": ["bench/submit.py", "--n", "500", "--processes", "2"],
        # oTree up to the targets' N=200 (at 500 its rounds take minutes on 2 cores)
        "screen": ["bench/screen.py", "--sizes", "10,100,200,500", "--steps", "10", "--otree-max", "200"],
        "screen_browser": ["bench/screen_browser.py", "--pages", "8", "--steps", "10"],
    }


def run_one(argv: list[str]) -> dict:
    started = time.monotonic()
    proc = subprocess.run([PY, *argv], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": proc.stderr[-3000:], "seconds": round(time.monotonic() - started, 1)}
    result = json.loads(proc.stdout)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    import channels
    import channels_redis
    import daphne
    import django
    import websockets

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "python": platform.python_version(),
        "versions": f"Django {django.__version__}, Channels {channels.__version__}, channels-redis "
        f"{channels_redis.__version__}, daphne {daphne.__version__}, websockets {websockets.__version__}",
    }


# ---- the report -------------------------------------------------------------------


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fanout_rows(results: list[dict]) -> list[str]:
    rows = [
        "| variant | N | p50 ms | p95 ms | p99 ms | max ms | receipts | missing | doubled | out of order |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: (r["n"], r["variant"])):
        lat = r["latency_ms"]
        rows.append(
            f"| {r['variant']} | {r['n']} | {_fmt(lat.get('p50'))} | {_fmt(lat.get('p95'))} "
            f"| {_fmt(lat.get('p99'))} | {_fmt(lat.get('max'))} | {lat.get('count', 0)} | {r['missing']} "
            f"| {r['doubled']} | {r['out_of_order']} |"
        )
    return rows


def split_rows(results: list[dict]) -> list[str]:
    rows = [
        "| variant | N | send -> transition p50 / p99 ms | transition -> receipt p50 / p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: (r["n"], r["variant"])):
        a, b = r.get("send_to_transition_ms"), r.get("transition_to_receipt_ms")
        if a and b:
            rows.append(
                f"| {r['variant']} | {r['n']} | {_fmt(a['p50'])} / {_fmt(a['p99'])} "
                f"| {_fmt(b['p50'])} / {_fmt(b['p99'])} |"
            )
    return rows


def ratio_rows(ratios: list[dict]) -> list[str]:
    rows = [
        "| N | our p99 ms | / floor | / stock channels-redis | / polling | / embedded |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ratios:
        rows.append(
            f"| {r['n']} | {_fmt(r['ours_p99_ms'])} | {_fmt(r.get('vs_floor'), 2)} | "
            f"{_fmt(r.get('vs_stock'), 2)} | {_fmt(r.get('vs_poll'), 2)} | {_fmt(r.get('vs_embedded'), 2)} |"
        )
    return rows


def verdicts(data: dict) -> list[tuple[str, str, str, bool | None]]:
    out = []
    ratios = {r["n"]: r for r in data.get("fanout", {}).get("ratios", [])}
    r500 = ratios.get(500, {})
    if r500:
        out.append(
            (
                "fan-out p99 at N=500 vs floor",
                f"<= {TARGETS['fanout_p99_vs_floor_500']}x",
                f"{_fmt(r500.get('vs_floor'), 2)}x ({_fmt(r500['ours_p99_ms'])} ms)",
                r500.get("vs_floor") is not None and r500["vs_floor"] <= TARGETS["fanout_p99_vs_floor_500"],
            )
        )
        out.append(
            (
                "fan-out p99 at N=500 vs stock channels-redis",
                f"<= {TARGETS['fanout_p99_vs_stock_500']}x",
                f"{_fmt(r500.get('vs_stock'), 2)}x",
                r500.get("vs_stock") is not None and r500["vs_stock"] <= TARGETS["fanout_p99_vs_stock_500"],
            )
        )
    r1000 = ratios.get(1000, {})
    if r1000:
        out.append(
            (
                "fan-out p99 at N=1000",
                f"<= {TARGETS['fanout_p99_1000_ms']:.0f} ms",
                f"{_fmt(r1000['ours_p99_ms'])} ms",
                r1000["ours_p99_ms"] <= TARGETS["fanout_p99_1000_ms"],
            )
        )
    c = data.get("connections", {})
    if "connect_burst" in c:
        b, rb = c["connect_burst"], c["reconnect_burst"]
        ok = b["succeeded"] == c["n"] and b["wall_s"] <= TARGETS["connect_burst_s"] and b["all_on_current_step"]
        out.append(
            (
                f"{c['n']} simultaneous connects",
                "all within 5 s, resynced",
                f"{b['succeeded']}/{c['n']} in {b['wall_s']} s",
                ok,
            )
        )
        ok = (
            rb["succeeded"] == c["n"]
            and (rb["wall_s"] or 99) <= TARGETS["connect_burst_s"]
            and rb["all_on_current_step"]
        )
        out.append(
            (
                f"{c['n']} simultaneous reconnects",
                "all within 5 s, resynced",
                f"{rb['succeeded']}/{c['n']} in {rb['wall_s']} s",
                ok,
            )
        )
        out.append(
            (
                "RSS per held connection",
                "< 150 KiB",
                f"{c['rss_per_connection_kib']} KiB",
                c["rss_per_connection_kib"] < TARGETS["rss_per_connection_kib"],
            )
        )
    for key in ("churn", "churn_full"):
        ch = data.get(key, {})
        if "lost" in ch:
            ok = ch["lost"] == 0 and ch["doubled"] == 0 and ch["out_of_order"] == 0 and ch["all_end_on_last_step"]
            out.append(
                (
                    f"churn ({ch['broadcasts']} broadcasts, N={ch['n']})",
                    "0 lost / doubled / out of order",
                    f"{ch['lost']} / {ch['doubled']} / {ch['out_of_order']}",
                    ok,
                )
            )
    for key in ("submit", "submit_2proc"):
        s = data.get(key, {})
        if "post_ms" in s:
            ok = s["all_stored"] and s["post_ms"]["p99"] < TARGETS["submit_p99_ms"]
            processes = s.get("processes", 1)
            out.append(
                (
                    f"{s['n']} simultaneous answers ({processes} daphne process{'es' if processes > 1 else ''})",
                    "all stored, p99 < 2 s",
                    f"{s['stored_sessions']}/{s['n']} stored, p99 {_fmt(s['post_ms']['p99'])} ms",
                    ok,
                )
            )
    out += screen_report.verdicts(data.get("screen", {}), data.get("screen_browser", {}))
    return out


def plot(data: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    results = (
        data.get("fanout", {}).get("results", [])
        + data.get("fanout_2proc", {}).get("results", [])
        + data.get("fanout_pool", {}).get("results", [])
    )
    if not results:  # (a run without fan-out keeps the previous figure)
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for variant in sorted({r["variant"] for r in results}):
        rows = sorted((r for r in results if r["variant"] == variant), key=lambda r: r["n"])
        ns = [r["n"] for r in rows]
        line = ax.plot(ns, [r["latency_ms"]["p99"] for r in rows], marker="o", label=f"{variant} p99")[0]
        ax.plot(ns, [r["latency_ms"]["p50"] for r in rows], linestyle="--", color=line.get_color(), alpha=0.6)
    ax.axhline(TARGETS["fanout_p99_1000_ms"], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("participants (N)")
    ax.set_ylabel("send -> receipt of the new step (ms); solid p99, dashed p50")
    ax.set_title("Lockstep fan-out latency (same run, same machine)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def report(data: dict) -> str:
    meta = data["meta"]
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`bench/run_all.py`); numbers below are from the run of "
        f"{meta['date']} on this machine: {meta['machine']['cpus']} CPUs ({meta['machine']['cpu']}), "
        f"{meta['machine']['memory_mib']} MiB RAM, Python {meta['machine']['python']}; "
        f"{meta['machine']['versions']}. Load average before / after: {meta['load_before']} / {meta['load_after']} "
        "(other people's test runs share this machine: figures move by tens of percent between runs).",
        "",
        "Every variant is measured in the same run, one after another, with the benchmark clients in two",
        "separate processes (real `websockets` clients; ours ack every state and ping every 3 s).",
        "",
        "## Targets",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for name, goal, measured, ok in verdicts(data):
        lines.append(f"| {name} | {goal} | {measured} | {'yes' if ok else 'NO'} |")
    fan = data.get("fanout", {})
    if "results" in fan:
        lines += [
            "",
            "## Fan-out latency",
            "",
            "Time from the experimenter's send to each participant's receipt of "
            "the new step, over all participants and advances.",
            "",
            "![fan-out latency](performance.png)",
            "",
        ]
        lines += fanout_rows(
            fan["results"]
            + data.get("fanout_2proc", {}).get("results", [])
            + data.get("fanout_pool", {}).get("results", [])
        )
        lines += ["", "Our p99 as a ratio to each baseline (same run):", ""]
        lines += ratio_rows(fan["ratios"])
        lines += [
            "",
            "Where our latency goes (the state's `server_ms` is stamped inside the advance's transaction):",
            "",
        ]
        lines += split_rows(
            fan["results"]
            + data.get("fanout_2proc", {}).get("results", [])
            + data.get("fanout_pool", {}).get("results", [])
        )
    c = data.get("connections", {})
    if "connect_burst" in c:
        b, rb = c["connect_burst"], c["reconnect_burst"]
        lines += [
            "",
            "## Connections",
            "",
            f"- {c['n']} participant sockets held in one group session: RSS {c['rss_before_kib']} KiB -> "
            f"{c['rss_after_kib']} KiB, **{c['rss_per_connection_kib']} KiB per connection**.",
            f"- {c['n']} simultaneous connects: {b['succeeded']} succeeded (first attempt: {b['first_attempt_ok']}),"
            f" the last snapshot {b['wall_s']} s after the first attempt; per connect p50 "
            f"{b['per_connect_ms'].get('p50')} ms, p99 {b['per_connect_ms'].get('p99')} ms; all on the current "
            f"step: {b['all_on_current_step']}.",
            f"- {c['n']} simultaneous reconnects: {rb['succeeded']} succeeded in {rb['wall_s']} s; per connect "
            f"p50 {rb['per_connect_ms'].get('p50')} ms, p99 {rb['per_connect_ms'].get('p99')} ms; all resynced "
            f"to the current step: {rb['all_on_current_step']}.",
        ]
    for key, title in (("churn", "Churn (make bench size)"), ("churn_full", "Churn, full run")):
        ch = data.get(key, {})
        if "lost" in ch:
            lines += [
                "",
                f"## {title}",
                "",
                f"{ch['broadcasts']} broadcasts at N={ch['n']} in {ch['seconds']} s "
                f"({ch['broadcasts_per_second']}/s); {ch['reconnects']} reconnects "
                f"({ch['reconnect_share_per_minute'] * 100:.0f}% of participants per minute); Redis killed and "
                f"restarted {ch['redis_restarts']}x during the advances (advances re-sent: {ch['advances_resent']}, "
                f"experimenter errors: {ch['experimenter_errors'] or 'none'}). **Lost {ch['lost']}, doubled "
                f"{ch['doubled']}, out of order {ch['out_of_order']}**; every participant ended on the last step: "
                f"{ch['all_end_on_last_step']}. Advance -> every participant has it: p50 "
                f"{ch['step_round_trip_ms']['p50']} ms, p99 {ch['step_round_trip_ms']['p99']} ms.",
            ]
    for key in ("submit", "submit_2proc"):
        s = data.get(key, {})
        if "post_ms" in s:
            p = s["post_ms"]
            processes = s.get("processes", 1)
            lines += [
                "",
                f"## Answers at once, {processes} daphne process{'es' if processes > 1 else ''}",
                "",
                f"{s['n']} participants POST their answer to the current step at the same moment: "
                f"{s['answers_per_second']} answers/s ({s['wall_s']} s from the first POST to the last response); "
                f"per POST p50 {p['p50']} ms, p95 {p['p95']} ms, p99 {p['p99']} ms, max {p['max']} ms; statuses "
                f"{s['statuses']}; rows stored for {s['stored_sessions']} of {s['n']} participants.",
            ]
            if "page_floor" in s:
                f = s["page_floor"]["ms"]
                cpu = s["server_cpu_s"]
                lines += [
                    "",
                    f"CPU while answering: server{'s' if processes > 1 else ''} {cpu['user']} s user + "
                    f"{cpu['system']} s system ({(cpu['user'] + cpu['system']) * 1000 / s['n']:.1f} ms per answer), "
                    f"PostgreSQL {s['postgres_cpu_s']} s. The floor in the same run (the same {s['n']} clients GET "
                    f"the home page, a template and no database, at once): p50 {f['p50']} ms, p99 {f['p99']} ms; "
                    f"answers p99 = {s['p99_over_page_floor']}x that.",
                ]
    lines += screen_report.section(data.get("screen", {}), data.get("screen_browser", {}))
    errors = {k: v["error"] for k, v in data.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["", "## Benchmarks that failed in this run", ""]
        for k, v in errors.items():
            lines += [f"- `{k}`:", "", "```", v[-1500:], "```"]
    analysis = ROOT / "bench" / "analysis.md"
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(plan(False)))
    parser.add_argument("--report-only", action="store_true", help="rewrite the docs from bench/results/latest.json")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    if args.report_only:
        data = json.loads(latest.read_text())
    else:
        data = {
            "meta": {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "machine": machine(),
                "load_before": [round(x, 2) for x in os.getloadavg()],
            }
        }
        chosen = plan(args.quick)
        if args.only:  # keep the other benchmarks' latest results
            chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
            if latest.exists():
                data = {**json.loads(latest.read_text()), "meta": data["meta"]}
        for name, argv_ in chosen.items():
            print(f"[bench] {name}: {' '.join(argv_)}", file=sys.stderr, flush=True)
            data[name] = run_one(argv_)
            print(f"[bench] {name}: {data[name].get('seconds')} s", file=sys.stderr, flush=True)
        data["meta"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        latest.write_text(json.dumps(data, indent=2))
    full = RESULTS / "churn_full.json"
    if full.exists() and "churn_full" not in data:
        data["churn_full"] = json.loads(full.read_text())
    DOCS.mkdir(exist_ok=True)
    plot(data, DOCS / "performance.png")
    for shot in data.get("screen_browser", {}).get("screenshots", [])[:1]:  # bench/results is not in git
        if Path(shot).exists():
            shutil.copyfile(shot, DOCS / "live-page.png")
    text = report(data)
    if args.only:  # benchmarks not run now keep their part of the previous report (bench/results is not in git)
        previous = DOCS / "performance.md"
        measured = {k for k in data if k != "meta" and isinstance(data[k], dict) and "error" not in data[k]}
        text = report_merge.merge(text, previous.read_text() if previous.exists() else "", measured)
    (DOCS / "performance.md").write_text(text)
    print(json.dumps({k: v for k, v in data.items() if k != "meta"} | {"meta": data["meta"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
