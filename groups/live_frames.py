"""The display's frame grid under ``starts_at`` (docs/groups.md, "The live page").

A page reveals a step in the animation frame whose time is nearest to ``starts_at`` on its
own clock (at most half a frame early). Pages whose frames come at the same moments
(windows on one machine: one display clock) pick the same frame only when ``starts_at``
is not near the middle between two of their frames: there a millisecond of clock
estimate puts them on either side, and the step appears a whole frame apart on them
(measured: 2 steps of 10 with 8 Chromium pages on one machine, none of them late).

A page says whether the onset it reports is the time of the frame that showed the step
on the server clock (the report's ``frame``: on time, or late content in the next frame;
not a stalled callback's own time, a hidden tab's timer, a bot or a protocol client,
whose onsets would only repeat ``starts_at``'s own phase). When most of the latest step's
frame onsets of a group share a phase within the frame
(``phase_of``), ``aligned`` moves a new
``starts_at`` later, to the next moment of that phase: onto the pages' frame, half a frame
from either boundary. Pages on separate displays have unrelated phases: no phase is
found, nothing moves. Per process, like the lead's samples (``groups.live``).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

FRAME_MS = 1000 / 60  # the displays' usual frame; a 120 Hz display's frames still fall on it
MIN_PAGES = 4  # onsets of one step from which a phase is trusted
BINS = 17  # of the frame (about 1 ms each); a phase is three adjacent ones
SHARE = 0.75  # of the onsets in those three: unrelated phases put 18 % there (10 pages: 8 of 10 by chance
#               in 1 step of 1,700), pages of one display nearly all
MAX_PER_STEP, MAX_GROUPS = 2000, 200

_onsets: OrderedDict = OrderedDict()  # group key -> (step, [onset ms]) of the latest step reported
_lock = threading.Lock()


def note(group_key, step: int, onset_ms: float) -> None:
    """A page of the group revealed ``step`` at ``onset_ms`` (server clock)."""
    with _lock:
        latest = _onsets.get(group_key)
        if latest is None or step > latest[0]:
            latest = _onsets[group_key] = (step, [])
        elif step < latest[0]:
            return  # a late report of an older step
        _onsets.move_to_end(group_key)
        if len(latest[1]) < MAX_PER_STEP:
            latest[1].append(float(onset_ms))
        while len(_onsets) > MAX_GROUPS:
            _onsets.popitem(last=False)


def phase_of(onsets: list[float]) -> float | None:
    """The phase (ms within ``FRAME_MS``) most of ``onsets`` share, or None: the ``BINS``
    bins of the frame counted, the three adjacent bins with the most onsets; they must hold
    ``SHARE`` of them, at least ``MIN_PAGES`` (a page whose frame callback ran late reports
    its own time, off the grid). Linear in the onsets: it runs when a step starts."""
    if len(onsets) < MIN_PAGES:
        return None
    phases = [t % FRAME_MS for t in onsets]
    bins = [int(p / FRAME_MS * BINS) % BINS for p in phases]
    counts = [0] * BINS
    for b in bins:
        counts[b] += 1
    best = max(range(BINS), key=lambda i: counts[i - 1] + counts[i] + counts[(i + 1) % BINS])
    near = [p for p, b in zip(phases, bins, strict=True) if (b - best + 1) % BINS <= 2]
    if len(near) < max(MIN_PAGES, SHARE * len(phases)):
        return None
    angles = [2 * math.pi * p / FRAME_MS for p in near]
    x, y = sum(map(math.cos, angles)), sum(map(math.sin, angles))
    return (math.atan2(y, x) % (2 * math.pi)) * FRAME_MS / (2 * math.pi)


def phase(group_key) -> float | None:
    """The frame phase of the group's pages (their latest step's onsets), or None."""
    with _lock:
        latest = _onsets.get(group_key)
        onsets = list(latest[1]) if latest else []
    return phase_of(onsets)


def aligned(starts_at: int, frame_phase: float | None) -> int:
    """``starts_at`` moved later (by less than a frame) to the next moment of
    ``frame_phase``; unchanged without one."""
    if frame_phase is None:
        return starts_at
    frames = math.ceil((starts_at - frame_phase) / FRAME_MS)
    return max(starts_at, round(frame_phase + frames * FRAME_MS))


def forget() -> None:
    """Tests: no phase known."""
    with _lock:
        _onsets.clear()
