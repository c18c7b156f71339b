"""The ``screen`` and ``screen_browser`` parts of docs/performance.md (bench/screen.py's and
bench/screen_browser.py's figures) and their verdicts, for bench/run_all.py."""

from __future__ import annotations

TARGETS = {
    # issue 16 (the live participant page), protocol clients in the same run
    "ready_p99_vs_floor": 3.0,  # at N=200 and N=500
    "ready_p99_vs_otree_200": 0.1,
    "onset_minus_ready_p99_ms": 50.0,  # at each N
    "spread_p95_ms_500": 5.0,
    "reload_p99_vs_plain_get": 3.0,  # at each N
    # the Chromium run (8 pages, 10 steps)
    "browser_revealed_p99_ms": 250.0,
    "browser_spread_p95_ms": 17.0,
    "browser_navigations": 0,
}


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _check(name: str, goal: str, value, limit, unit: str = "x") -> tuple[str, str, str, bool | None]:
    shown = f"{_fmt(value, 2)}{unit}" if value is not None else "not measured"
    return name, goal, shown, (value <= limit) if value is not None else None


def verdicts(screen: dict, browser: dict) -> list[tuple[str, str, str, bool | None]]:
    t, out = TARGETS, []
    rows = {row["n"]: row for row in screen.get("ratios", [])}
    for n in (200, 500):
        if n in rows:
            out.append(_check(f"click -> content ready p99 at N={n} vs floor", f"<= {t['ready_p99_vs_floor']}x",
                              rows[n].get("ready_vs_floor"), t["ready_p99_vs_floor"]))  # fmt: skip
    if 200 in rows:
        out.append(_check("click -> content ready p99 at N=200 vs oTree", f"<= {t['ready_p99_vs_otree_200']}x",
                          rows[200].get("ready_vs_otree"), t["ready_p99_vs_otree_200"]))  # fmt: skip
    for n, row in sorted(rows.items()):
        if row.get("onset_minus_ready_ms") is not None:
            goal = f"<= {t['onset_minus_ready_p99_ms']:.0f} ms"
            out.append(_check(f"click -> onset p99 minus ready p99 at N={n}", goal, row["onset_minus_ready_ms"],
                              t["onset_minus_ready_p99_ms"], " ms"))  # fmt: skip
    if 500 in rows:
        out.append(_check("onset spread p95 at N=500 (protocol clients)", f"<= {t['spread_p95_ms_500']:.0f} ms",
                          rows[500].get("spread_p95_ms"), t["spread_p95_ms_500"], " ms"))  # fmt: skip
    for n, row in sorted(rows.items()):
        if row.get("reload_vs_plain_get") is not None:
            out.append(_check(f"reload p99 at N={n} vs plain GET", f"<= {t['reload_p99_vs_plain_get']}x",
                              row["reload_vs_plain_get"], t["reload_p99_vs_plain_get"]))  # fmt: skip
    if "revealed_ms" in browser:
        pages = f"Chromium, {browser['n']} pages"
        out += [
            _check(f"{pages}: click -> revealed p99", f"<= {t['browser_revealed_p99_ms']:.0f} ms",
                   browser["revealed_ms"].get("p99"), t["browser_revealed_p99_ms"], " ms"),
            _check(f"{pages}: onset spread p95 (revealed frames, machine clock)",
                   f"<= {t['browser_spread_p95_ms']:.0f} ms", browser["revealed_spread_ms"].get("p95"),
                   t["browser_spread_p95_ms"], " ms"),
            _check(f"{pages}: onset spread p95 (as reported, server clock by each page's offset)",
                   f"<= {t['browser_spread_p95_ms']:.0f} ms", browser["onset_spread_ms"].get("p95"),
                   t["browser_spread_p95_ms"], " ms"),
            _check(f"{pages}: navigations during the group part", "0", browser["navigations"], 0, ""),
        ]  # fmt: skip
    return out


SCREEN_METHOD = """\
Click -> new trial on screen (`bench/screen.py`, one run, one variant after another at each N). **live**: N
protocol clients (asyncio, `websockets` and one keep-alive HTTP connection each, in two client processes, no
browser; `bench/screen_live.py`) do what the live participant page does: one document and one socket each (acks,
pings and the clock offset of the pong with the shortest round trip by protocol.js's rule, `realtime/clock.py`:
quick pings while the best round trip is above 5 ms, one every 3 s, one after each step's onset), opened before
the experimenter
starts the session; each step every client POSTs its answer to the answer URL with its visit's nonce (10 % of
them POST it twice: the second must store nothing); 0.5 s after the last reply the experimenter advances (t0,
the machine's clock); each client receives the state, takes the step's content (the `group.content` frame
pushed after it, or the content GET) and parses it: **content ready**; it
reveals the step at `starts_at` on its own clock (`starts_at` minus its offset estimate) or at once when late:
**onset** = max(starts_at - offset, ready) on the machine's clock, which is the server's (one machine), so the
**onset spread** per step (last minus first) is what the clients' clock estimates and late content cost; it
reports the onset over its socket and with the answer. **reload**: the same clients GET the run URL on each new
step as a reload does (frame -> the live page of that step) beside a **plain GET** (the same N clients GET the
home page, a template without database, at once). **floor**: a bare `websockets` broadcast to N sockets
(`bench/baseline_ws.py`). **oTree** (`otree prodserver` from its own virtualenv, `bench/otree_app`): all N
players in one group pass a WaitPage each round, each page's socket held as its page script does; t0 = the last
player's submit, made 0.5 s after every other player waits on the wait page; done = that player's next page
returned 200. Answers stored / lost / doubled are counted in the database (ours) and from the POSTs oTree
accepted (one row per player and round: nothing can be doubled). Clock error: the clients' offset estimates
(server minus client clock, from the pongs) when they revealed a step; on one machine the true offset is 0, so
the estimate is its error, and the spread of on-time reveals is the spread of these errors. Lead: `starts_at`
minus t0, as the server chose it."""

BROWSER_METHOD = """\
Chromium (`bench/screen_browser.py`): real pages of Debian's Chromium through Playwright, each in its own browser
context, in one group session on daphne + PostgreSQL + Redis, opened before the experimenter's socket starts the
session; each page answers each step through its form, 0.5 s after the last reply the experimenter's socket
advances (t0). Each page records in `window.ensembleLive.log`, with `performance.now()`, the state's and the
content's arrival, the content ready and the animation frame that revealed the step, and the onset it reported
(that frame's time on the server clock by its clock offset; clock error as above). Click -> revealed =
`performance.timeOrigin` + the time the reveal frame's callback showed the step (`reveal_at`, at or after that
frame's time) - t0 (one machine, one clock); click -> next frame: the time of the frame after it (the revealed
frame is out by then). Onset spread = last minus first reported onset per step; revealed spread: the same of
`reveal_at` on the machine's clock (it includes how late each renderer's callback ran), frame spread: of the
reveal frames' times. Navigations = `framenavigated` events of the pages' main frames after their first load."""


def _stats(s: dict | None, keys=("p50", "p95", "p99")) -> str:
    s = s or {}
    return " / ".join(_fmt(s.get(k)) for k in keys)


def _answers(r: dict) -> str:
    a = r.get("answers")
    return f"{a['stored']} / {a['lost']} / {a['doubled']}" if a else "-"


def rows(screen: dict) -> list[str]:
    out = [
        "| variant | N | frame p50 / p95 / p99 ms | click -> ready p50 / p95 / p99 ms | click -> onset p50 / p95 "
        "/ p99 ms | onset spread p50 / p95 / max ms | clock error p50 / p95 ms | lead p50 ms "
        "| reload / plain GET p99 ms | answers stored / lost / doubled | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(screen.get("results", []), key=lambda r: (r["n"], r["variant"])):
        if "error" in r:
            out.append(f"| {r['variant']} | {r['n']} | failed: `{r['error'][:200]}` |||||||| {r.get('load')} |")
            continue
        frame = r.get("latency_ms") or r.get("frame_ms")
        ready = r.get("ready_ms") or r.get("screen_ms")
        reload_ = r.get("reload_ms", {}).get("p99"), r.get("plain_get_ms", {}).get("p99")
        variant = r["variant"] + (f" (run of {r['rerun']})" if r.get("rerun") else "")
        out.append(
            f"| {variant} | {r['n']} | {_stats(frame)} | {_stats(ready)} | {_stats(r.get('onset_ms'))} "
            f"| {_stats(r.get('onset_spread_ms'), ('p50', 'p95', 'max'))} "
            f"| {_stats(r.get('offset_error_ms'), ('p50', 'p95'))} | {_fmt(r.get('lead_ms', {}).get('p50'))} "
            f"| {_fmt(reload_[0])} / {_fmt(reload_[1])} | {_answers(r)} | {r.get('load')} |"
        )
    out += ["", "Ratios in the same run (p99):", "",
            "| N | ready ms | / floor | / oTree | onset - ready ms | spread p95 ms | reload / plain GET |",
            "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in screen.get("ratios", []):
        out.append(
            f"| {r['n']} | {_fmt(r.get('ready_p99_ms'))} | {_fmt(r.get('ready_vs_floor'), 2)} "
            f"| {_fmt(r.get('ready_vs_otree'), 2)} | {_fmt(r.get('onset_minus_ready_ms'))} "
            f"| {_fmt(r.get('spread_p95_ms'))} | {_fmt(r.get('reload_vs_plain_get'), 2)} |"
        )
    return out


def browser_rows(b: dict) -> list[str]:
    return [
        "| pages | steps | click -> state / content p50 ms | click -> ready p50 / p95 / p99 ms "
        "| click -> revealed p50 / p95 / p99 / max ms "
        "| click -> next frame p99 ms | onset spread p50 / p95 / max ms | revealed / frame spread p95 ms "
        "| clock error p50 / p95 ms | late | navigations | answers stored / lost / doubled |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {b['n']} | {b['steps']} | {_fmt(b.get('frame_ms', {}).get('p50'))} / "
        f"{_fmt(b.get('content_ms', {}).get('p50'))} | {_stats(b['ready_ms'])} "
        f"| {_stats(b['revealed_ms'], ('p50', 'p95', 'p99', 'max'))} "
        f"| {_fmt(b.get('next_frame_ms', {}).get('p99'))} "
        f"| {_stats(b['onset_spread_ms'], ('p50', 'p95', 'max'))} | {_fmt(b['revealed_spread_ms'].get('p95'))} / "
        f"{_fmt(b.get('reveal_frame_spread_ms', {}).get('p95'))} "
        f"| {_stats(b.get('offset_error_ms'), ('p50', 'p95'))} "
        f"| {b['late_reveals']} | {b['navigations']} | {_answers(b)} |",
        "",
        *(["![the live page mid-session (Chromium, one of the pages)](live-page.png)"] if b.get("screenshots") else []),
    ]


def section(screen: dict, browser: dict) -> list[str]:
    out = []
    if "results" in screen:
        out += ["", "## Click -> new trial on screen", "", SCREEN_METHOD, "", *rows(screen)]
        if screen.get("seconds"):
            out += ["", f"The screen benchmark took {screen['seconds']:.0f} s."]
        if screen.get("rerun"):
            out += [
                "",
                "Rows marked with another run's time were measured again in that run (floor and live side by "
                "side, so their ratio stays within one run) because this run's variant failed; ratios against "
                "oTree or the reload then cross runs.",
            ]
    if "revealed_ms" in browser:
        out += ["", "## Click -> new trial on screen, Chromium", "", BROWSER_METHOD, "", *browser_rows(browser)]
    return out
