"""The ``screen`` part of docs/performance.md (bench/screen.py's figures), for bench/run_all.py."""

from __future__ import annotations


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def verdicts(screen: dict, targets: dict) -> list[tuple[str, str, str, bool | None]]:
    r = {row["n"]: row for row in screen.get("ratios", [])}.get(200)
    if not r:
        return []
    out = []
    for key, name, target in (
        ("screen_vs_floor", "click -> screen p99 at N=200 vs floor", "screen_p99_vs_floor_200"),
        ("screen_vs_otree", "click -> screen p99 at N=200 vs oTree", "screen_p99_vs_otree_200"),
        ("reload_vs_plain_get", "reload p99 at N=200 vs plain GET", "reload_p99_vs_plain_get_200"),
    ):
        if r.get(key) is not None:
            out.append((name, f"<= {targets[target]}x", f"{_fmt(r[key], 2)}x", r[key] <= targets[target]))
    return out


SCREEN_METHOD = """\
Click -> new trial on screen (`bench/screen.py`): N protocol clients (asyncio, `websockets` and one keep-alive
HTTP connection each, in two client processes, no browser) do what a participant's page does today: each step
every client answers (the form's POST with its CSRF token, then the redirect's GET: the waiting page); the
experimenter advances 0.5 s after the last answer's waiting page is back with its socket (t0: the advance is
sent); each client receives the `group.state` frame, acks it and GETs the run URL as
`location.replace(runUrl)` does; the new step's trial page (its hidden `_group_step`) parsed is "content
ready". Each page load opens a new socket, as a new document does. In the same run: the floor (a bare
`websockets` broadcast to N sockets, `bench/baseline_ws.py`), a plain GET (the same N clients GET the home
page, a template without database, at once on their connections), and oTree (`otree prodserver` from its own
virtualenv, `bench/otree_app`: all N players in one group pass a WaitPage each round; its clients hold each
page's socket as its page script does; t0 = the last player's submit, made 0.5 s after every other player
waits on the wait page; done = that player's next page returned 200). Answers stored / lost / doubled are
counted in the database (ours) and from the POSTs that oTree accepted."""


def rows(screen: dict) -> list[str]:
    out = [
        "| variant | N | frame p50 / p95 / p99 ms | click -> screen p50 / p95 / p99 ms | reload p99 ms "
        "| plain GET p99 ms | answers stored / lost / doubled | load |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(screen.get("results", []), key=lambda r: (r["n"], r["variant"])):
        frame = r.get("latency_ms") or r.get("frame_ms") or {}
        shown = r.get("screen_ms", {})
        answers = r.get("answers")
        stored = f"{answers['stored']} / {answers['lost']} / {answers['doubled']}" if answers else "-"
        out.append(
            f"| {r['variant']} | {r['n']} | {_fmt(frame.get('p50'))} / {_fmt(frame.get('p95'))} "
            f"/ {_fmt(frame.get('p99'))} | {_fmt(shown.get('p50'))} / {_fmt(shown.get('p95'))} "
            f"/ {_fmt(shown.get('p99'))} | {_fmt(r.get('reload_ms', {}).get('p99'))} "
            f"| {_fmt(r.get('plain_get_ms', {}).get('p99'))} "
            f"| {stored} "
            f"| {r.get('load')} |"
        )
    out += ["", "| N | click -> screen p99 ms | / floor p99 | frame p99 / floor p99 | oTree p99 ms "
             "| / oTree p99 | reload p99 / plain GET p99 |", "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in screen.get("ratios", []):
        out.append(
            f"| {r['n']} | {_fmt(r['ours_screen_p99_ms'])} | {_fmt(r.get('screen_vs_floor'), 2)} "
            f"| {_fmt(r.get('frame_vs_floor'), 2)} | {_fmt(r.get('otree_screen_p99_ms'))} "
            f"| {_fmt(r.get('screen_vs_otree'), 2)} | {_fmt(r.get('reload_vs_plain_get'), 2)} |"
        )
    return out


def section(screen: dict) -> list[str]:
    if "results" not in screen:
        return []
    return ["", "## Click -> new trial on screen", "", SCREEN_METHOD, "", *rows(screen)]
