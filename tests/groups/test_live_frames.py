"""``starts_at`` on the pages' frames (groups/live_frames.py): once a group's onsets
show that its pages share a display clock, a new step's ``starts_at`` is moved later onto
their frames, so that a page's clock error cannot put it a frame apart from the others;
pages with unrelated frames (separate displays, protocol clients) move nothing."""

# ruff: noqa: F811 - the fixtures of tests/groups/test_live.py, imported, are this module's tests' arguments
from __future__ import annotations

import random

import pytest

from groups import live, live_frames, presence, services
from groups.live_frames import FRAME_MS
from tests.groups.test_live import experiment, group  # noqa: F401  (fixtures)

PHASE = 5.3  # ms within the frame


@pytest.fixture(autouse=True)
def _fresh():
    live.forget_samples()
    yield
    live.forget_samples()


def frames(n: int, *, start: float = 1_796_500_000_000.0, error: float = 1.0, seed: int = 1) -> list[float]:
    """``n`` onsets on frames of phase ``PHASE`` (a few frames apart), each off by up to
    ``error`` ms and rounded to the millisecond, as the pages report them."""
    rng = random.Random(seed)
    base = start - start % FRAME_MS + PHASE
    return [round(base + rng.randrange(4) * FRAME_MS + rng.uniform(-error, error)) for _ in range(n)]


def test_a_shared_phase_is_found_from_rounded_onsets_with_clock_errors():
    found = live_frames.phase_of(frames(8))
    assert found is not None and abs(found - PHASE) < 1.0


def test_a_page_whose_frame_callback_ran_late_does_not_hide_the_phase():
    found = live_frames.phase_of([*frames(7), frames(1)[0] + 6])  # its own time, 6 ms off the grid
    assert found is not None and abs(found - PHASE) < 1.0
    assert live_frames.phase_of([*frames(4), *(t + 6 for t in frames(4, seed=5))]) is None  # half off: none


def test_unrelated_frames_and_too_few_pages_give_no_phase():
    rng = random.Random(2)
    assert live_frames.phase_of([rng.uniform(0, 10_000) for _ in range(200)]) is None  # protocol clients
    found = [live_frames.phase_of([rng.uniform(0, 10_000) for _ in range(10)]) for _ in range(300)]
    assert found.count(None) == 300  # 10 pages of separate displays
    assert live_frames.phase_of(frames(live_frames.MIN_PAGES - 1)) is None


def test_aligned_moves_later_by_less_than_a_frame_onto_the_phase():
    for starts in (1_796_500_000_000, 1_796_500_000_007, 1_796_500_000_016):
        moved = live_frames.aligned(starts, PHASE)
        assert starts <= moved < starts + FRAME_MS + 1
        assert min(abs((moved - PHASE) % FRAME_MS), FRAME_MS - abs((moved - PHASE) % FRAME_MS)) <= 0.5
    assert live_frames.aligned(1_796_500_000_000, None) == 1_796_500_000_000


def test_only_the_latest_steps_onsets_count():
    key = ("gs", "CODE")
    for t in frames(8):
        live_frames.note(key, 3, t)
    rng = random.Random(3)
    for _ in range(8):
        live_frames.note(key, 2, rng.uniform(0, 10_000))  # an older step's reports, late: ignored
    assert live_frames.phase(key) is not None
    for _ in range(8):
        live_frames.note(key, 4, rng.uniform(0, 10_000))  # a newer step with unrelated frames
    assert live_frames.phase(key) is None


@pytest.mark.django_db
def test_a_groups_next_starts_at_falls_on_the_frames_its_pages_reported(group, staff, monkeypatch):
    pids = []
    for _ in range(live_frames.MIN_PAGES):
        _, session = group()
        pids.append(session.group_membership.pseudonym)
    services.group_session_start(group_session=group.gs, by=staff)
    reported = frames(len(pids), start=float(live._now_ms()))
    onsets = [
        {"participant": p, "step": 0, "at": float(t), "late_ms": 0.0, "frame": True}
        for p, t in zip(pids, reported, strict=True)
    ]
    onsets.append({"participant": pids[0], "step": 0, "at": 7.0, "late_ms": 40.0, "frame": True})  # outvoted
    presence.record_reports(group_session=group.gs.pk, onsets=onsets, locations={}, errors=[])
    monkeypatch.setattr(live, "lead_ms", lambda gs=None, pages=0: 100)
    for _ in range(5):
        starts, chosen = live.reserve(group.gs, len(pids))
        assert chosen + 100 <= starts < chosen + 100 + FRAME_MS + 1
        off = (starts - PHASE) % FRAME_MS
        assert min(off, FRAME_MS - off) <= 1.5  # on the pages' frames


@pytest.mark.django_db
def test_onsets_that_are_not_frame_times_move_nothing(group, staff):
    """Bots, protocol clients and timers report ``starts_at`` itself: its phase is no display's."""
    pids = [group()[1].group_membership.pseudonym for _ in range(live_frames.MIN_PAGES + 2)]
    services.group_session_start(group_session=group.gs, by=staff)
    starts = live._now_ms() + 7
    onsets = [{"participant": pid, "step": 0, "at": float(starts), "late_ms": 0.0} for pid in pids]
    presence.record_reports(group_session=group.gs.pk, onsets=onsets, locations={}, errors=[])
    assert live_frames.phase(live._group_key(group.gs)) is None
