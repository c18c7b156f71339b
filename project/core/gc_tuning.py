"""Garbage collection tuned for a server process that holds many sockets.

With CPython's default thresholds (700, 10, 10) a daphne process holding 1000 group
sockets collected several times per state change: each advance builds thousands of
short-lived containers (a snapshot of 1000 rows, 1000 frames), freed by reference
counting but counted towards the next collection, and every collection walks the
objects that survived it. Timed with ``gc.callbacks`` during ``bench/fanout.py`` at
N = 1000: young collections of 5-33 ms two or three times per advance, and full
ones of 275 ms, each stopping every socket of the process (docs/performance.md).

``tune_for_serving()`` runs once at start-up, after Django is loaded and warmed
(``asgi.py``): it moves everything alive then into the permanent generation
(``gc.freeze``: the code, settings and templates are never collected anyway) and
collects the young generation every 50,000 allocations instead of 700. Reference
cycles are still collected, just in fewer, larger passes.
``SERVER_GC_THRESHOLDS`` (e.g. ``700,10,10`` for CPython's defaults) overrides them.
"""

from __future__ import annotations

import gc
import os

DEFAULT_THRESHOLDS = (50_000, 20, 100)


def thresholds() -> tuple[int, ...]:
    raw = os.environ.get("SERVER_GC_THRESHOLDS", "").strip()
    if not raw:
        return DEFAULT_THRESHOLDS
    try:
        values = tuple(int(x) for x in raw.split(","))
    except ValueError:
        raise ValueError(f"SERVER_GC_THRESHOLDS must be up to three integers, e.g. 700,10,10 (got {raw!r})") from None
    if not 1 <= len(values) <= 3 or any(v < 0 for v in values):
        raise ValueError(f"SERVER_GC_THRESHOLDS must be up to three integers >= 0 (got {raw!r})")
    return values


def tune_for_serving() -> tuple[int, ...]:
    """Freeze what start-up built and set the thresholds; returns them."""
    values = thresholds()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*values)
    return values
