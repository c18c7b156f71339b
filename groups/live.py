"""The live page's timing and reports (docs/groups.md, "The live page").

- ``starts_at``: when the current step is to appear on every page (server epoch ms),
  chosen once per step after the commit that started it (the first snapshot built for
  that step, in whichever process builds it) as that moment plus ``lead_ms()``, and kept
  in the cache (Redis with ``REDIS_URL``: ``add`` is atomic, so every process and every
  later snapshot of the step carries the same value).
- ``lead_ms``: per step, the p99 of the "content ready" delays (content ready on a page
  minus the moment ``starts_at`` was chosen) that pages reported, far outliers dropped;
  the lower median of those per-step values over the last ``GROUP_LIVE_LEAD_STEPS``
  steps in this process, plus ``GROUP_LIVE_LEAD_MARGIN_MS``, within
  ``GROUP_LIVE_LEAD_MIN_MS`` .. ``GROUP_LIVE_LEAD_MAX_MS`` (docs/groups.md says why).
- ``store_onsets``, ``log_client_errors``: what the pages' sockets reported, written by
  ``groups.presence.record_reports`` (collected by ``realtime.live.Reports``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from . import state as sm
from .models import StepLog, StepOnset

logger = logging.getLogger(__name__)

_KEEP_SECONDS = 24 * 3600
_known: OrderedDict = OrderedDict()  # (key) -> (starts_at, chosen_at), this process's latest
_samples: OrderedDict = OrderedDict()  # (gs, step) -> [delay ms, ...], the last GROUP_LIVE_LEAD_STEPS steps
_lock = threading.Lock()
MAX_SAMPLES_PER_STEP = 2000
OUTLIER_FLOOR_MS = 10.0  # the smallest IQR the outlier fence of one step's delays uses
ONSET_CONSOLE_STEPS = 5  # the console shows the onsets of this many latest steps


#: Builds a step's pushed content in this thread (``groups.live_content.prebuild``, registered by
#: ``GroupsConfig.ready``: the snapshots below the services must not import the runner's pages).
_prebuild = None


def use_prebuild(prebuild) -> None:
    global _prebuild
    _prebuild = prebuild


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _key(gs, step: int) -> str:
    return _key_of(gs.pk, gs.participant_code, step)


def _key_of(group_session_id: int, participant_code: str, step: int) -> str:
    # The participant code tells group sessions apart that reuse an id (a test database).
    return f"live:starts:{group_session_id}:{participant_code}:{step}"


def known_starts_at(group_session_id: int, participant_code: str, step: int) -> int | None:
    """``starts_at`` of a step if it was chosen (reads only)."""
    key = _key_of(group_session_id, participant_code, step)
    with _lock:
        known = _known.get(key)
    known = known or cache.get(key)
    return known[0] if known else None


def _step_delay(delays: list[float]) -> float:
    """One step's "content ready" delay: the p99 of its reports after dropping the far
    outliers (above Q3 + 3 IQR, the IQR at least ``OUTLIER_FLOOR_MS``): one page with a
    bad clock estimate or one stalled client does not set the whole group's lead."""
    ordered = sorted(delays)
    n = len(ordered)
    q1, q3 = ordered[(n - 1) // 4], ordered[(3 * (n - 1)) // 4]
    fence = q3 + 3 * max(q3 - q1, OUTLIER_FLOOR_MS)
    kept = [d for d in ordered if d <= fence]
    return kept[min(len(kept) - 1, math.ceil(0.99 * len(kept)) - 1)]


def lead_ms() -> int:
    """The lead time for a step starting now (see the module)."""
    low, high = _setting("GROUP_LIVE_LEAD_MIN_MS", 60), _setting("GROUP_LIVE_LEAD_MAX_MS", 1500)
    with _lock:
        recent = [step for step in _samples.values() if step][-max(1, _setting("GROUP_LIVE_LEAD_STEPS", 3)) :]
    per_step = sorted(_step_delay(step) for step in recent)
    if not per_step:
        lead = _setting("GROUP_LIVE_LEAD_DEFAULT_MS", 150)
    else:  # the lower median of the recent steps: one slow step (the first, a hiccup) is outvoted
        lead = per_step[(len(per_step) - 1) // 2] + _setting("GROUP_LIVE_LEAD_MARGIN_MS", 30)
    return int(min(max(lead, low), high))


def planned(gs, state: sm.GroupState) -> tuple[int, int] | None:
    """``(starts_at, chosen_at)`` of the step ``state`` runs, choosing it now if nobody
    has; None while no step runs (waiting, over)."""
    if state.phase not in (sm.RUNNING, sm.PAUSED):
        return None
    key = _key(gs, state.step)
    with _lock:
        known = _known.get(key)
    if known is None:
        known = cache.get(key)
        if known is None and state.phase == sm.RUNNING and _prebuild is not None:
            _prebuild(gs.pk, state.step)  # the content first: the lead starts when it is there
            known = cache.get(key)
        if known is None:
            chosen = _now_ms()
            mine = (chosen + lead_ms(), chosen)
            known = mine if cache.add(key, mine, _KEEP_SECONDS) else (cache.get(key) or mine)
        with _lock:
            _known[key] = tuple(known)
            while len(_known) > 1000:
                _known.popitem(last=False)
    return known[0], known[1]


def reserve() -> tuple[int, int]:
    """``(starts_at, chosen_at)`` for a step starting now, chosen before its commit: a
    timed step's deadline is ``starts_at`` + timeout in the same change
    (``groups.flowservices.follow``); ``pin`` makes it the step's after the commit."""
    chosen = _now_ms()
    return chosen + lead_ms(), chosen


def pin(group_session_id: int, participant_code: str, step: int, plan: tuple[int, int]) -> None:
    """After the commit that started ``step`` with a ``reserve``d plan: build the content
    (as ``planned`` would) and keep the plan as the step's ``starts_at``, so that every
    page reveals the step, and counts its timer down, from the moment the deadline was
    chosen from. A process that chose first (it read the step in between) keeps its own."""
    if _prebuild is not None:
        _prebuild(group_session_id, step)
    key = _key_of(group_session_id, participant_code, step)
    if not cache.add(key, tuple(plan), _KEEP_SECONDS):
        logger.warning("group session %s step %s: starts_at was chosen before the timer's", group_session_id, step)
        plan = cache.get(key) or plan
    with _lock:
        _known[key] = tuple(plan)


def starts_at(gs, state: sm.GroupState) -> int | None:
    """When the current step appears on every page (server epoch ms), or None."""
    plan = planned(gs, state)
    return plan[0] if plan else None


def note_delay(gs, step: int, ready_ms: float) -> None:
    """A page had the content of ``step`` ready at ``ready_ms`` (server clock). The start
    (step 0) is not kept: every page builds its first content then, and every socket
    answers the start at once; it says little about the steps that follow."""
    if step == 0:
        return
    with _lock:
        known = _known.get(_key(gs, step))
    if known is None:
        known = cache.get(_key(gs, step))
    if not known:
        return
    delay = max(0.0, float(ready_ms) - known[1])
    with _lock:
        bucket = _samples.setdefault((gs.pk, step), [])
        if len(bucket) < MAX_SAMPLES_PER_STEP:
            bucket.append(delay)
        while len(_samples) > max(1, _setting("GROUP_LIVE_LEAD_STEPS", 3)):
            _samples.popitem(last=False)


def forget_samples() -> None:
    """Tests: start again from the default lead."""
    with _lock:
        _samples.clear()
        _known.clear()


def store_onsets(gs, state: sm.GroupState, onsets: list[dict]) -> int:
    """Store the reported onsets of known participants (the first per step kept); how many."""
    rows = []
    for onset in onsets:
        if onset["participant"] not in state.participants or onset["step"] > state.step:
            continue
        plan = cache.get(_key(gs, onset["step"]))
        rows.append(
            StepOnset(
                group_session_id=gs.pk,
                pseudonym=onset["participant"],
                step=onset["step"],
                starts_at=plan[0] if plan else None,
                onset_ms=round(onset["at"]),
                late_ms=round(onset["late_ms"]),
                ready_ms=round(onset["ready_at"]) if onset.get("ready_at") else None,
            )  # fmt: skip
        )
        if onset.get("ready_at"):
            note_delay(gs, onset["step"], onset["ready_at"])
    StepOnset.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def log_client_errors(gs, state: sm.GroupState, errors: list[dict]) -> None:
    """jsPsych errors the pages reported: the server log and the step log."""
    for error in errors:
        if error["participant"] not in state.participants:
            continue
        logger.warning("group session %s: jsPsych error on %s's page at step %s: %s", gs.pk,
                       error["participant"], error["step"], error["message"])  # fmt: skip
        at = _now_ms()
        StepLog.objects.create(
            group_session=gs, step=error["step"], action="client_error",
            at=datetime.fromtimestamp(at / 1000, tz=UTC), at_ms=at,
            data={"participant": error["participant"], "message": error["message"][:500]},
        )  # fmt: skip


def console_onsets(group_session_id: int, current_step: int) -> list[dict]:
    """Per step (the latest ``ONSET_CONSOLE_STEPS``, newest first): how many pages
    reported an onset, the spread (last minus first, ms) and who was late."""
    rows = StepOnset.objects.filter(
        group_session_id=group_session_id, step__gt=current_step - ONSET_CONSOLE_STEPS
    ).values_list("step", "pseudonym", "onset_ms", "late_ms")
    steps: dict[int, dict] = {}
    for step, pid, onset, late in rows:
        entry = steps.setdefault(step, {"step": step, "reported": 0, "first": onset, "last": onset, "late": []})
        entry["reported"] += 1
        entry["first"], entry["last"] = min(entry["first"], onset), max(entry["last"], onset)
        if late > 0:
            entry["late"].append(pid)
    return [
        {"step": e["step"], "reported": e["reported"], "spread_ms": e["last"] - e["first"], "late": sorted(e["late"])}
        for e in sorted(steps.values(), key=lambda e: -e["step"])
    ]
