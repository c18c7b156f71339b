"""A rehearsal: N bots against a server, start to end, and the report.

``prepare(plan)`` sets the run up in this project's database (bot token, user tickets for
a solo experiment, a group session and the rehearsal experimenter for a group one),
``play(setup)`` runs the bots and the experimenter in one asyncio loop (no database),
``verify(setup, records)`` counts what the database stored against what the bots sent,
and ``rehearse(plan)`` does all three and returns the report (bots/report.py).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bots import report
from bots.experimenter import Experimenter
from bots.participant import Bot, Options
from bots.script import Script, load, module_for

REHEARSAL_USER = "rehearsal-bot"


class RehearsalError(ValueError):
    """Bad input for a rehearsal (unknown experiment, group session, ...): nothing was started."""


@dataclass
class Plan:
    experiment: str
    count: int
    url: str = "http://127.0.0.1:8000"
    group_session: int | None = None
    start_group: bool = False
    advance: str = "auto"
    think: tuple[float, float] = (0.0, 0.0)
    drop_rate: float = 0.0
    drop_seconds: tuple[float, float] = (1.0, 3.0)  # how long a dropped bot stays away
    bots_module: str | None = None
    timeout: float = 600.0
    seed: int | None = None
    join: str = "link"  # group: the group session's link, or "code" (its participant code page)


@dataclass
class Setup:
    plan: Plan
    experiment_id: int
    is_group: bool
    script: Script
    token: str
    tickets: list[str] = field(default_factory=list)
    participant_code: str = ""
    group_ticket: str = ""
    group_session: int | None = None
    experimenter: dict | None = None  # username, password, experimenter_code


def rehearsal_user() -> tuple[str, str]:
    """The staff user rehearsals act as, with a fresh password for this run."""
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username=REHEARSAL_USER, defaults={"is_staff": True})
    password = secrets.token_urlsafe(24)
    user.is_staff = True
    user.set_password(password)
    user.save()
    return user, password


def prepare(plan: Plan) -> Setup:
    from runner import bot_token
    from runner.models import Experiment

    if not 1 <= plan.count <= 5000:
        raise RehearsalError(f"--count must be 1..5000, not {plan.count}")
    exp = Experiment.objects.filter(slug=plan.experiment).first()
    if exp is None:
        raise RehearsalError(f"no experiment with slug {plan.experiment!r}")
    try:
        script = load(plan.bots_module or module_for(exp))
    except ImportError as exc:
        raise RehearsalError(f"cannot import bots module {plan.bots_module!r}: {exc}") from exc
    setup = Setup(plan, exp.pk, exp.is_group, script, bot_token.mint(exp.pk))
    if exp.is_group:
        _prepare_group(setup, exp)
    else:
        from runner.tickets import create_tickets

        if plan.group_session or plan.start_group:
            raise RehearsalError(f"{exp.slug} is a solo experiment: no group session")
        setup.tickets = [t.code for t in create_tickets(experiment=exp, type="user", count=plan.count, label="bots")]
    return setup


def _prepare_group(setup: Setup, exp) -> None:
    from groups import services
    from groups.models import GroupSession

    plan = setup.plan
    user, password = rehearsal_user() if plan.advance in ("auto", "start") else (None, "")
    if plan.group_session:
        gs = GroupSession.objects.filter(pk=plan.group_session, experiment=exp).first()
        if gs is None:
            raise RehearsalError(f"no group session {plan.group_session} of {exp.slug}")
        if gs.phase in ("ended", "aborted"):
            raise RehearsalError(f"group session {gs.pk} is {gs.phase}")
        if user is not None:
            services.attach_experimenter(group_session=gs, user=user)
    else:
        gs = services.start_group_session(experiment=exp, size=plan.count, experimenter=user)
    setup.group_session, setup.participant_code = gs.pk, gs.participant_code
    setup.group_ticket = gs.ticket.code if gs.ticket is not None and plan.join == "link" else ""
    if user is not None:
        code = gs.experimenter_code
        setup.experimenter = {"username": user.username, "password": password, "experimenter_code": code}


def _bots(setup: Setup) -> list[Bot]:
    plan = setup.plan
    out, urls = [], plan.url.split(",")
    for i in range(plan.count):
        options = Options(base_url=urls[i % len(urls)], experiment_id=setup.experiment_id, bot_token=setup.token,
                          ticket=setup.tickets[i] if setup.tickets else setup.group_ticket,
                          participant_code=setup.participant_code,
                          think=plan.think, drop_rate=plan.drop_rate, drop_seconds=plan.drop_seconds,
                          timeout=plan.timeout, seed=plan.seed)  # fmt: skip
        out.append(Bot(i + 1, options, setup.script))
    return out


async def play(setup: Setup, progress: Callable[[list], None] | None = None) -> tuple[list, dict, list, list]:
    """Run the bots (and the experimenter); returns (records, clicked, errors outside the bots,
    steps the experimenter advanced without "all responded")."""
    bots = _bots(setup)
    spread = min(2.0, 0.01 * len(bots))  # participants arrive over a moment, not in one burst

    async def one(bot: Bot):
        await asyncio.sleep(bot.rng.uniform(0, spread))
        return await bot.play()

    tasks = [asyncio.create_task(one(b)) for b in bots]
    done = lambda: all(t.done() for t in tasks)  # noqa: E731
    arrived = lambda: all(t.done() or b.record.arrived for b, t in zip(bots, tasks, strict=True))  # noqa: E731
    experimenter = None
    if setup.experimenter:
        experimenter = Experimenter(setup.plan.url.split(",")[0], count=setup.plan.count, **setup.experimenter)

        def answered(step: int) -> bool:
            return all(t.done() or any(v["step"] == step for v in b.record.sent.values())
                       for b, t in zip(bots, tasks, strict=True))  # fmt: skip

        run = experimenter.run(done, arrived, answered, advance=setup.plan.advance, timeout=setup.plan.timeout)
        control = asyncio.create_task(run)
    while not done():
        if progress is not None:
            progress([b.record for b in bots])
        if experimenter is not None and control.done():  # the experimenter failed: nobody moves the group on
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            break
        await asyncio.sleep(0.5)
    records = [b.record for b in bots]
    if progress is not None:
        progress(records)
    if experimenter is not None:
        await asyncio.gather(asyncio.wait_for(control, 60), return_exceptions=True)
        return records, experimenter.clicked, experimenter.errors, experimenter.anyway
    return records, {}, [], []


def verify(setup: Setup, records: list) -> tuple[dict, list[str]]:
    """Answers stored vs sent (by each bot's run), and runs not flagged as bots."""
    from runner.models import Response, Session

    sessions = dict(Session.objects.filter(run_token__in=[r.run_token for r in records if r.run_token])
                    .values_list("run_token", "pk"))  # fmt: skip
    flagged = set(Session.objects.filter(pk__in=sessions.values(), is_bot=True).values_list("pk", flat=True))
    rows = Response.objects.filter(session_id__in=sessions.values())
    rows = rows.values_list("session_id", "form_order", "visit", "step")
    stored: dict[int, dict] = {}
    for session_id, order, visit, step in rows:
        stored.setdefault(session_id, {})[(order, visit)] = step
    played, dropped = _stood_in(sessions.values())
    counts = {"stored": 0, "lost": 0, "doubled": 0, "played_by_bot": 0}
    for r in records:
        session_id = sessions.get(r.run_token)
        mine, by_bot = stored.get(session_id, {}), played.get(session_id, set())
        counts["stored"] += len(mine)
        counts["played_by_bot"] += len(by_bot & set(mine))
        counts["lost"] += len(set(r.sent) - set(mine))
        steps = [s for s in mine.values() if s is not None]
        counts["doubled"] += len(set(mine) - set(r.sent) - by_bot) + len(steps) - len(set(steps))
        counts["doubled"] += len(by_bot & set(r.sent))  # the person's answer and the stand-in's: twice
        r.dropped_out = dropped.get(session_id, 0)
    unflagged = len(sessions) - len(flagged)
    return counts, [f"{unflagged} bot runs are not flagged as bots"] if unflagged else []


def _stood_in(session_ids) -> tuple[dict[int, set], dict[int, int]]:
    """From the step log (dropout policy ``bot``, issue 20): per run, the visits a stand-in
    bot answered (``bot_answered``), and how often it was declared dropped out."""
    from groups.models import Membership, StepLog

    rows = Membership.objects.filter(session_id__in=list(session_ids))
    runs = {(gs, pid): sid for gs, pid, sid in rows.values_list("group_session_id", "pseudonym", "session_id")}
    played: dict[int, set] = {}
    dropped: dict[int, int] = {}
    entries = StepLog.objects.filter(group_session_id__in={gs for gs, _p in runs}, action__in=("bot_answered",
                                     "dropped_out")).values_list("group_session_id", "action", "data")  # fmt: skip
    for gs, action, data in entries:
        run = runs.get((gs, (data or {}).get("participant")))
        if run is None:
            continue
        if action == "bot_answered":
            played.setdefault(run, set()).add((data["order"], data["visit"]))
        else:
            dropped[run] = dropped.get(run, 0) + 1
    return played, dropped


def _group_page(records: list) -> str:
    """Which group page the bots followed (reload: main's page per step; live: the live page)."""
    return ", ".join(sorted({r.group_page for r in records if r.group_page})) or "none (solo)"


def rehearse(plan: Plan, progress: Callable[[list], None] | None = None) -> dict:
    """Prepare, play, verify; the report (raises RehearsalError before anything starts)."""
    setup = prepare(plan)
    started = time.monotonic()
    records, clicked, errors, anyway = asyncio.run(play(setup, progress))
    seconds = time.monotonic() - started
    stored, flag_errors = verify(setup, records)
    meta = {"experiment": plan.experiment, "url": plan.url, "script": setup.script.name,
            "group_page": _group_page(records), "group_session": setup.group_session,
            "seconds": round(seconds, 2), "advanced_anyway": anyway}  # fmt: skip
    return report.build(meta=meta, records=records, clicked=clicked, stored=stored, extra_errors=errors + flag_errors)
