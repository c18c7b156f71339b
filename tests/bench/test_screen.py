"""bench/screen.py's oTree clients work against ``otree prodserver`` (a short run at N=3)
when its virtualenv exists (``bench/.otree-venv``, made by the first ``bench/screen.py``
run); the live page's variants: tests/bench/test_screen_live.py."""

from __future__ import annotations

import asyncio

import pytest

from bench import screen, screen_otree

N, STEPS = 3, 3


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
