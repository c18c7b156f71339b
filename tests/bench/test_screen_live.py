"""bench/screen.py's live-page variants and bench/screen_browser.py run end to end against
a live server (short runs: N=3, 3 steps, embedded defaults: a daphne process, SQLite, the
in-process layer), so that the harness cannot rot; and the report's verdicts."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench import common, screen, screen_browser, screen_liverun, screen_report

N, STEPS = 3, 3


@pytest.fixture
def bench_var(tmp_path, monkeypatch):
    """The benchmark's server files (SQLite database, daphne log, static files) in this test's directory."""
    monkeypatch.setattr(common, "VAR", tmp_path)
    monkeypatch.setattr(common, "_migrated", set())
    common.raise_nofile()
    return tmp_path


def test_live_clients_reveal_every_step_and_store_every_answer_once(bench_var):
    result = asyncio.run(screen_liverun.run_live(N, STEPS, workers=1, mode="live", embedded=True, resend=1.0))

    assert result["failed_setups"] == 0, result["setup_errors"]
    assert result["missing_screens"] == 0 and result["wrong_pages"] == 0, result["errors"]
    assert result["frame_ms"]["count"] == result["ready_ms"]["count"] == result["onset_ms"]["count"] == N * STEPS
    # revealed at starts_at, or at once when the content came late: never before it was ready
    for q in ("p50", "p99", "max"):
        assert result["onset_ms"][q] >= result["ready_ms"][q] >= result["frame_ms"][q]
    assert result["onset_spread_ms"]["count"] == STEPS and result["lead_ms"]["count"] == STEPS
    assert result["lead_ms"]["p50"] > 0  # starts_at lies after the advance
    # every client POSTs each answer twice with the same visit and nonce: the second stores nothing
    assert result["answer_statuses"] == {"200 stored=True": N * STEPS, "200 stored=False": N * STEPS}
    assert result["answers"] == {"expected": N * STEPS, "stored": N * STEPS, "lost": 0, "doubled": 0}
    assert result["sockets_opened"] == N and result["http_connections"] == N  # one document, one socket each
    row = screen.ratios([result | {"variant": "live"}])[0]
    assert row["onset_minus_ready_ms"] >= 0 and row["spread_p95_ms"] >= 0


def test_reload_clients_get_the_live_page_of_each_step(bench_var):
    result = asyncio.run(screen_liverun.run_live(N, STEPS, workers=1, mode="reload", embedded=True, resend=0))

    assert result["failed_setups"] == 0, result["setup_errors"]
    assert result["missing_screens"] == 0 and result["wrong_pages"] == 0, result["errors"]
    assert result["reload_ms"]["count"] == N * STEPS and result["reload_ms"]["p50"] > 0
    assert result["plain_get_ms"]["count"] == N * STEPS  # one warm-up round not counted
    assert result["answer_statuses"] == {"200 stored=True": N * STEPS}
    assert result["answers"] == {"expected": N * STEPS, "stored": N * STEPS, "lost": 0, "doubled": 0}
    assert screen.ratios([result | {"variant": "reload"}])[0]["reload_vs_plain_get"] > 0


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(screen_browser.CHROMIUM), reason="no Chromium")
def test_chromium_pages_reveal_every_step_without_navigating(bench_var):
    shots = bench_var / "shots"
    result = asyncio.run(screen_browser.run_browser(2, 2, embedded=True, shots=shots))

    assert result["navigations"] == 0
    assert result["revealed_ms"]["count"] == result["ready_ms"]["count"] == 2 * 2
    assert result["revealed_ms"]["p50"] >= result["ready_ms"]["p50"] > 0
    assert result["onset_spread_ms"]["count"] == 2 and result["revealed_spread_ms"]["count"] == 2
    assert result["reveal_frame_spread_ms"]["count"] == 2 and result["next_frame_ms"]["count"] == 2 * 2
    assert result["next_frame_ms"]["p50"] >= result["revealed_ms"]["p50"]  # the frame after the reveal's
    assert result["answers"] == {"expected": 4, "stored": 4, "lost": 0, "doubled": 0}
    assert len(result["screenshots"]) == 2 and all((shots / p).exists() for p in result["screenshots"])


def _live(n, ready, onset, spread):
    return {"variant": "live", "n": n, "ready_ms": {"p99": ready}, "onset_ms": {"p99": onset},
            "onset_spread_ms": {"p95": spread}}  # fmt: skip


def test_report_judges_each_target_from_the_same_run():
    results = [
        {"variant": "floor", "n": 200, "latency_ms": {"p99": 20.0}},
        {"variant": "otree", "n": 200, "screen_ms": {"p99": 3000.0}},
        _live(200, 50.0, 90.0, 2.0),  # 2.5x the floor, 1/60 of oTree; onset 40 ms after ready
        {"variant": "floor", "n": 500, "latency_ms": {"p99": 30.0}},
        _live(500, 120.0, 200.0, 6.0),  # 4x the floor; onset 80 ms after ready; spread over 5 ms
        {"variant": "reload", "n": 500, "reload_ms": {"p99": 90.0}, "plain_get_ms": {"p99": 40.0}},
    ]
    browser = {"n": 8, "revealed_ms": {"p99": 240.0}, "onset_spread_ms": {"p95": 12.0},
               "revealed_spread_ms": {"p95": 18.0}, "navigations": 0}  # fmt: skip

    verdicts = {name: ok for name, _, _, ok in screen_report.verdicts({"ratios": screen.ratios(results)}, browser)}

    assert verdicts == {
        "click -> content ready p99 at N=200 vs floor": True,
        "click -> content ready p99 at N=500 vs floor": False,
        "click -> content ready p99 at N=200 vs oTree": True,
        "click -> onset p99 minus ready p99 at N=200": True,
        "click -> onset p99 minus ready p99 at N=500": False,
        "onset spread p95 at N=500 (protocol clients)": False,
        "reload p99 at N=500 vs plain GET": True,
        "Chromium, 8 pages: click -> revealed p99": True,
        "Chromium, 8 pages: onset spread p95 (revealed frames, machine clock)": False,
        "Chromium, 8 pages: onset spread p95 (as reported, server clock by each page's offset)": True,
        "Chromium, 8 pages: navigations during the group part": True,
    }


OLD_REPORT = """# Performance

Generated by `make bench`; numbers below are from the run of 2026-12-02 01:09 UTC on this machine: 2 CPUs.

## Targets

| target | goal | measured | met |
|---|---|---|---|
| fan-out p99 at N=500 vs floor | <= 3.0x | 1.93x (51.4 ms) | yes |
| click -> screen p99 at N=200 vs floor | <= 3.0x | 341.55x | NO |

## Fan-out latency

fan-out table

## Click -> new trial on screen

today's reload path
"""


def test_a_partial_run_keeps_the_other_benchmarks_part_of_the_previous_report():
    from bench import report_merge

    new = (
        "# Performance\n\nnumbers below are from the run of 2026-12-06 05:50 UTC on this machine.\n\n## Targets\n\n"
        "| target | goal | measured | met |\n|---|---|---|---|\n"
        "| click -> content ready p99 at N=200 vs floor | <= 3.0x | 2.00x | yes |\n\n"
        "## Click -> new trial on screen\n\nthe live page\n"
    )

    merged = report_merge.merge(new, OLD_REPORT, {"screen"})

    assert "| fan-out p99 at N=500 vs floor | <= 3.0x | 1.93x (51.4 ms) | yes |" in merged
    assert "| click -> content ready p99 at N=200 vs floor | <= 3.0x | 2.00x | yes |" in merged
    assert "341.55x" not in merged and "today's reload path" not in merged  # screen was measured again
    assert "## Fan-out latency\n\nfan-out table" in merged and "the live page" in merged
    assert "kept from the run of 2026-12-02 01:09 UTC" in merged
    assert report_merge.merge(new, "", {"screen"}) == new
