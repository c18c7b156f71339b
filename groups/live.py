"""The live page's timing and reports (docs/groups.md, "The live page").

- ``starts_at``: when the current step is to appear on every page (server epoch ms),
  chosen once per step after the commit that started it (the first snapshot built for
  that step, in whichever process builds it) as that moment plus ``lead_ms()``, and kept
  in the cache (Redis with ``REDIS_URL``: ``add`` is atomic, so every process and every
  later snapshot of the step carries the same value).
- ``lead_ms``: per step, the slowest of the "content ready" delays (content ready on a
  page minus the moment ``starts_at`` was chosen) that the group's pages reported, far
  outliers dropped; the lower median of those per-step values over the group session's
  last ``GROUP_LIVE_LEAD_STEPS`` steps (the start included), plus
  ``GROUP_LIVE_LEAD_MARGIN_MS``, within ``GROUP_LIVE_LEAD_MIN_MS`` ..
  ``GROUP_LIVE_LEAD_MAX_MS``; for its first step, this process's recent ms per page times
  its pages (docs/groups.md says why); then moved onto the frames of the group's pages
  where they share a display clock (``groups.live_frames``).
- ``store_onsets``, ``log_client_errors``: what the pages' sockets reported, written by
  ``groups.presence.record_reports`` (collected by ``realtime.live.Reports``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from . import live_frames
from . import state as sm
from .models import StepLog, StepOnset
from .sql import statement

logger = logging.getLogger(__name__)

_KEEP_SECONDS = 24 * 3600
_known: OrderedDict = OrderedDict()  # (key) -> (starts_at, chosen_at), this process's latest
# (group session id, code) -> {step: [(delay ms, clock rtt ms or None), ...]}: the latest
# GROUP_LIVE_LEAD_STEPS steps of each group session this process heard of (a group of 10 and
# one of 500 in one process do not share a lead)
_samples: OrderedDict = OrderedDict()
_lock = threading.Lock()
MAX_SAMPLES_PER_STEP = 2000
MAX_GROUPS = 200  # group sessions whose samples this process keeps (the latest)
RTT_TRUST, RTT_FLOOR_MS = 3.0, 20.0  # a ready report counts if its clock's round trip is within these
RTT_LIMIT_MS = 100.0  # and never above this: its ready_at may be off by half of it
RATE_STEPS = 20  # steps of any group session the first step's estimate (ms per page) is taken from
OUTLIER_FLOOR_MS = 10.0  # the smallest IQR the outlier fence of one step's delays uses
ONSET_CONSOLE_STEPS = 5  # the console shows the onsets of this many latest steps


#: Builds a step's pushed content in this thread (``groups.live_content.prebuild``, registered by
#: ``GroupsConfig.ready``: the snapshots below the services must not import the runner's pages),
#: and sends the reads it makes (``groups.live_content.send_reads``).
_prebuild = None
_send_reads = None


def use_prebuild(prebuild, send_reads=None) -> None:
    global _prebuild, _send_reads
    _prebuild, _send_reads = prebuild, send_reads


def send_content_reads(group_session_id: int):
    """Inside a change that may start a step, in the pipeline of its lock
    (``store.lock_load_and``): send the reads the step's content is built from and return
    a function giving them (``prebuild``'s ``reads``), or None. They are read under the
    lock, before the change writes: the runs they read do not move while it is held, and
    the group session's own fields are taken from the change (``planned``'s ``gs``)."""
    return _send_reads(group_session_id) if _send_reads is not None else None


_warm = None  # (group session id, step): groups.live_page.warm


def use_warm(warm) -> None:
    global _warm
    _warm = warm


def warm(gs, state: sm.GroupState) -> None:
    """Before a running step's state is published: what this process prepares for the pages
    that may reload on it (the shell, ``groups.live_page.warm``). Never raises."""
    if _warm is None or state.phase != sm.RUNNING:
        return
    try:
        _warm(gs.pk, state.step)
    except Exception:
        logger.exception("group session %s step %s: the live page could not be warmed", gs.pk, state.step)


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
    known = _plan_of(_key_of(group_session_id, participant_code, step))
    return known[0] if known else None


def _plan_of(key: str) -> tuple[int, int] | None:
    """``(starts_at, chosen_at)`` of a step if it was chosen: this process's copy, else the
    cache's, kept here from then on (a chosen plan never changes: ``cache.add``)."""
    with _lock:
        known = _known.get(key)
    if known is None:
        known = cache.get(key)
        if known is not None:
            _remember(key, known)
    return known


def _remember(key: str, plan) -> None:
    with _lock:
        _known[key] = tuple(plan)
        while len(_known) > 1000:
            _known.popitem(last=False)


def step_delay(delays: list[float], rtts: list[float | None] | None = None) -> float | None:
    """One step's "content ready" delay: the slowest page's, after dropping the pages
    whose clock estimate is unsure (``trusted``) and the far outliers (above Q3 + 3 IQR,
    the IQR at least ``OUTLIER_FLOOR_MS``): one page with a bad clock estimate or one
    stalled client does not set the whole group's lead. None when no page's report can
    be trusted (the step says nothing about the delivery)."""
    ordered = sorted(trusted(delays, rtts) if rtts else delays)
    if not ordered:
        return None
    n = len(ordered)
    q1, q3 = ordered[(n - 1) // 4], ordered[(3 * (n - 1)) // 4]
    fence = q3 + 3 * max(q3 - q1, OUTLIER_FLOOR_MS)
    return max(d for d in ordered if d <= fence)


def trusted(delays: list[float], rtts: list[float | None]) -> list[float]:
    """The delays of the pages whose clock estimate had a round trip (``rtts``, None:
    not said) at most ``RTT_TRUST`` times the step's median one, or ``RTT_FLOOR_MS``,
    and never above ``RTT_LIMIT_MS``: a page's ``ready_at`` is off by up to half its
    round trip, and early in a loaded session most pages have had only round trips of
    seconds (then none is kept). All when no page said its round trip."""
    known = sorted(r for r in rtts if r is not None)
    if not known:
        return delays
    limit = min(RTT_LIMIT_MS, max(RTT_FLOOR_MS, RTT_TRUST * known[(len(known) - 1) // 2]))
    return [d for d, r in zip(delays, rtts, strict=True) if r is None or r <= limit]


def choose_lead(per_step: list[float], first: float | None, *, margin: int, low: int, high: int,
                default: int) -> int:  # fmt: skip
    """The lead time (ms) from this group's latest per-step delays (``step_delay``): their
    lower median (one slow step of three is outvoted) plus ``margin``; before any step of
    the group, ``first`` (the estimate from this process's other steps) plus ``margin``,
    or ``default`` without one; within ``low`` .. ``high``."""
    if per_step:
        lead = sorted(per_step)[(len(per_step) - 1) // 2] + margin
    elif first is not None:
        lead = first + margin
    else:
        lead = default
    return int(min(max(lead, low), high))


def first_estimate(rates: list[float], pages: int) -> float | None:
    """A group's first step, before it reported anything: the median ms per page of the
    latest steps of this process (any group session) times the group's pages; None
    without either."""
    if not rates or pages <= 0:
        return None
    return sorted(rates)[(len(rates) - 1) // 2] * pages


def lead_ms(gs=None, pages: int = 0) -> int:
    """The lead time for a step of ``gs`` (with ``pages`` participants) starting now (see
    the module)."""
    keep = max(1, _setting("GROUP_LIVE_LEAD_STEPS", 3))
    with _lock:  # copies of the lists (the reports go on arriving); the statistics outside the lock
        mine = _samples.get(_group_key(gs)) if gs is not None else None
        own = [list(d) for _, d in sorted(mine.items())[-keep:] if d] if mine else []
        latest = [list(d) for steps in reversed(_samples.values()) for d in steps.values() if d][:RATE_STEPS]
    per_step = [v for v in map(_value, own) if v is not None]
    rates = [v / len(d) for d in latest if (v := _value(d)) is not None] if not per_step else []
    return choose_lead(per_step, first_estimate(rates, pages),
                       margin=_setting("GROUP_LIVE_LEAD_MARGIN_MS", 30), low=_setting("GROUP_LIVE_LEAD_MIN_MS", 30),
                       high=_setting("GROUP_LIVE_LEAD_MAX_MS", 1500),
                       default=_setting("GROUP_LIVE_LEAD_DEFAULT_MS", 150))  # fmt: skip


def _value(reports: list[tuple[float, float | None]]) -> float | None:
    return step_delay([d for d, _ in reports], [r for _, r in reports])


def _group_key(gs) -> tuple:
    return gs.pk, gs.participant_code


def planned(gs, state: sm.GroupState, reads=None) -> tuple[int, int] | None:
    """``(starts_at, chosen_at)`` of the step ``state`` runs, choosing it now if nobody
    has; None while no step runs (waiting, over). ``reads``: the content's rows read with
    the change that started the step (``send_content_reads``), for ``gs`` as it committed."""
    if state.phase not in (sm.RUNNING, sm.PAUSED):
        return None
    key = _key(gs, state.step)
    known = _plan_of(key)
    if known is None and state.phase == sm.RUNNING and _prebuild is not None:
        _prebuild(gs.pk, state.step, reads=reads, gs=gs)  # the content first: the lead starts when it is there
        known = _plan_of(key)
    if known is None:
        chosen = _now_ms()
        mine = (_on_frames(gs, chosen + lead_ms(gs, len(state.participants))), chosen)
        known = mine if cache.add(key, mine, _KEEP_SECONDS) else (cache.get(key) or mine)
        _remember(key, known)
    return known[0], known[1]


def reserve(gs=None, pages: int = 0) -> tuple[int, int]:
    """``(starts_at, chosen_at)`` for a step starting now, chosen before its commit: a
    timed step's deadline is ``starts_at`` + timeout in the same change
    (``groups.flowservices.follow``); ``pin`` makes it the step's after the commit."""
    chosen = _now_ms()
    return _on_frames(gs, chosen + lead_ms(gs, pages)), chosen


def _on_frames(gs, starts: int) -> int:
    """``starts`` on the frames of the group's pages where they share a display clock
    (``groups.live_frames``)."""
    return live_frames.aligned(starts, live_frames.phase(_group_key(gs)) if gs is not None else None)


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
    _remember(key, plan)


def starts_at(gs, state: sm.GroupState, reads=None) -> int | None:
    """When the current step appears on every page (server epoch ms), or None."""
    plan = planned(gs, state, reads)
    return plan[0] if plan else None


def note_delay(gs, step: int, ready_ms: float, rtt_ms: float | None = None) -> None:
    """A page had the content of ``step`` ready at ``ready_ms`` (server clock, by its
    clock estimate of round trip ``rtt_ms``). The start
    (step 0) counts too: it is the group's only measure before step 1 (the lower median
    lets the next steps outvote it if it was slow)."""
    known = _plan_of(_key(gs, step))
    if not known:
        return
    # A ready_at after now (the report is here) is a clock estimate's error: now bounds it.
    delay = max(0.0, min(float(ready_ms), _now_ms()) - known[1])
    keep = max(1, _setting("GROUP_LIVE_LEAD_STEPS", 3))
    with _lock:
        steps = _samples.setdefault(_group_key(gs), OrderedDict())
        _samples.move_to_end(_group_key(gs))
        bucket = steps.setdefault(step, [])
        if len(bucket) < MAX_SAMPLES_PER_STEP:
            bucket.append((delay, rtt_ms))
        while len(steps) > keep:  # the oldest step goes (a late report of an old step does not stay)
            del steps[min(steps)]
        while len(_samples) > MAX_GROUPS:
            _samples.popitem(last=False)


def forget_samples() -> None:
    """Tests: start again from the default lead."""
    with _lock:
        _samples.clear()
        _known.clear()
    live_frames.forget()


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
            note_delay(gs, onset["step"], onset["ready_at"], onset.get("rtt_ms"))
        if onset.get("frame"):  # the time of the frame that showed it
            live_frames.note(_group_key(gs), onset["step"], onset["at"])
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
    reported an onset, the spread (last minus first, ms) and who was late. Counted by the
    database: every snapshot of a group of 500 carries it, and reading the 2,500 rows to
    count them in Python took a tenth of an advance's time before its publishing. In SQL
    written once (the ORM spent about 2 ms of CPU building the two queries, within the
    window where a step's pages reload); the late pages' names only when a step had any."""
    since = [int(group_session_id), int(current_step) - ONSET_CONSOLE_STEPS]
    with connection.cursor() as cursor:
        cursor.execute(statement("onset_counts", _onset_counts_sql), since)
        counts = cursor.fetchall()
        late: dict[int, list[str]] = {}
        if any(row[4] for row in counts):
            cursor.execute(statement("onset_late", _onset_late_sql), since)
            for step, pid in cursor.fetchall():
                late.setdefault(step, []).append(pid)
    return [{"step": step, "reported": reported, "spread_ms": last - first, "late": late.get(step, [])}
            for step, reported, first, last, _ in counts]  # fmt: skip


def _onset_sql(q, select: str, rest: str, late: bool = False) -> str:
    col = {f.name: q(f.column) for f in StepOnset._meta.concrete_fields}
    where = f"{col['group_session']} = %s AND {col['step']} > %s" + (f" AND {col['late_ms']} > 0" if late else "")
    return f"SELECT {select.format(**col)} FROM {q(StepOnset._meta.db_table)} WHERE {where} {rest.format(**col)}"


def _onset_counts_sql(q) -> str:
    """Per recent step, newest first: reports, first and last onset, late reports."""
    select = "{step}, COUNT(*), MIN({onset_ms}), MAX({onset_ms}), SUM(CASE WHEN {late_ms} > 0 THEN 1 ELSE 0 END)"
    return _onset_sql(q, select, "GROUP BY {step} ORDER BY {step} DESC")


def _onset_late_sql(q) -> str:
    return _onset_sql(q, "{step}, {pseudonym}", "ORDER BY {step}, {pseudonym}", late=True)
