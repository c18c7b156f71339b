"""bench/screen.py's clients work against live servers (short runs at N=3): ours on the
embedded defaults (a daphne process, SQLite, the in-process layer), oTree when its
virtualenv exists (``bench/.otree-venv``, made by the first ``bench/screen.py`` run)."""

from __future__ import annotations

import asyncio

import pytest

from bench import common, screen, screen_otree

N, STEPS = 3, 3


@pytest.fixture
def bench_var(tmp_path, monkeypatch):
    """The benchmark's server files (SQLite database, daphne log) in this test's directory."""
    monkeypatch.setattr(common, "VAR", tmp_path)
    monkeypatch.setattr(common, "_migrated", set())
    common.raise_nofile()
    return tmp_path


def test_ours_clients_see_every_step_and_store_every_answer(bench_var):
    result = asyncio.run(screen.run_ours(N, STEPS, workers=1, reconnect=True, embedded=True))

    assert result["failed_setups"] == 0, result["setup_errors"]
    assert result["missing_screens"] == 0 and result["wrong_pages"] == 0
    assert result["frame_ms"]["count"] == result["screen_ms"]["count"] == N * STEPS
    # the page comes after its frame, and the reload is what separates them
    assert result["frame_ms"]["max"] <= result["screen_ms"]["max"]
    assert result["reload_ms"]["count"] == N * STEPS and result["reload_ms"]["p50"] > 0
    assert result["plain_get_ms"]["count"] == N * STEPS  # one warm-up round not counted
    assert result["answer_statuses"] == {"302->200": N * STEPS}
    assert result["answers"] == {"expected": N * STEPS, "stored": N * STEPS, "lost": 0, "doubled": 0}
    # a socket at the start, then one per page load: the waiting page and each new trial page
    assert result["sockets_opened"] == N + 2 * N * STEPS
    assert result["http_connections"] == N  # keep-alive held throughout
    ratios = screen.ratios([result | {"variant": "ours"}])
    assert ratios[0]["ours_reload_vs_plain_get"] > 0


@pytest.mark.skipif(not (screen_otree.VENV / "bin" / "otree").exists(), reason="no bench/.otree-venv yet")
def test_otree_clients_pass_every_wait_page():
    result = asyncio.run(screen.run_otree(N, STEPS, workers=1))

    assert result["failed_setups"] == 0, result["setup_errors"]
    assert result["errors"] == [] and result["missing_screens"] == 0
    assert result["screen_ms"]["count"] == N * STEPS
    assert result["answers"] == {"expected": N * STEPS, "stored": N * STEPS, "lost": 0, "doubled": 0}
    # a wait page socket per player and round, but for the player whose submit completed the round
    assert result["wait_sockets_opened"] == N * STEPS - STEPS
    # a Trial page's socket per page shown (one left before it connected is not counted)
    assert N * STEPS <= result["sockets_opened"] <= N * (STEPS + 1)
