"""project.core.gc_tuning: the server's garbage-collection settings."""

from __future__ import annotations

import gc

import pytest

from project.core import gc_tuning


def test_default_and_overridden_thresholds(monkeypatch):
    monkeypatch.delenv("SERVER_GC_THRESHOLDS", raising=False)
    assert gc_tuning.thresholds() == gc_tuning.DEFAULT_THRESHOLDS
    monkeypatch.setenv("SERVER_GC_THRESHOLDS", "700,10,10")
    assert gc_tuning.thresholds() == (700, 10, 10)


@pytest.mark.parametrize("raw", ["a,b", "1,2,3,4", "-1", "10,,3"])
def test_bad_thresholds_are_refused_with_a_message(monkeypatch, raw):
    monkeypatch.setenv("SERVER_GC_THRESHOLDS", raw)
    with pytest.raises(ValueError, match="SERVER_GC_THRESHOLDS"):
        gc_tuning.thresholds()


def test_tune_for_serving_freezes_start_up_and_sets_thresholds(monkeypatch):
    monkeypatch.delenv("SERVER_GC_THRESHOLDS", raising=False)
    before = gc.get_threshold()
    try:
        assert gc_tuning.tune_for_serving() == gc_tuning.DEFAULT_THRESHOLDS
        assert gc.get_threshold() == gc_tuning.DEFAULT_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # what start-up built is no longer walked
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
