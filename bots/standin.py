"""Stand-in bots (issue 20, dropout policy ``bot``): a participant declared dropped out is
played on, in the server process, with the experiment's bots (its package's ``bots.py``,
docs/bots.md) or the default bot, until the person is back (they take over at the next
step: the membership's ``bot`` is cleared, ``returned`` in the step log).

``play`` is registered in ``groups.flowservices.BOT_PLAYERS`` by ``BotsConfig.ready``;
it is called after the commit that handed the run over and starts one thread per
participant. The thread looks at the group session every ``POLL_SECONDS``: when a step
runs that the participant has not answered, it builds the step's content as the live
page gets it (``groups.live_content.build``), chooses the answers as a rehearsal bot
does (``bots.script``), and stores them through the runner as the live page's POST
would (``runner.batching``: the visit's nonce stores an answer once, whoever sends it).
Each stored answer is in the step log as ``bot_answered`` with ``bot: true`` (the
exports' ``played_by_bot``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.http import QueryDict

from bots.pages import parse_fragment
from bots.script import ExpectationFailed, load, module_for, posted_fields, screen_for

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
TRIES_PER_STEP = 3  # an answer the server refuses as invalid this often: the step is left to the timer
_threads: dict[tuple[int, str], threading.Thread] = {}
_lock = threading.Lock()


def play(group_session_id: int, pseudonym: str, session_id: int) -> None:
    """Play ``pseudonym``'s run (``session_id``) on in a thread of its own (one per participant)."""
    key = (group_session_id, pseudonym)
    with _lock:
        running = _threads.get(key)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(target=_run, args=(group_session_id, pseudonym, session_id), daemon=True,
                                  name=f"standin-{group_session_id}-{pseudonym}")  # fmt: skip
        _threads[key] = thread
    thread.start()


def _run(group_session_id: int, pseudonym: str, session_id: int) -> None:
    limit = time.monotonic() + float(getattr(settings, "BOT_STANDIN_MAX_SECONDS", 6 * 3600))
    try:
        standin = StandIn(group_session_id, pseudonym, session_id)
        while time.monotonic() < limit and standin.turn():
            time.sleep(POLL_SECONDS)
    except Exception:
        logger.exception("stand-in bot for %s in group session %s failed", pseudonym, group_session_id)
    finally:
        connection.close()


class StandIn:
    """One dropped-out participant's stand-in."""

    def __init__(self, group_session_id: int, pseudonym: str, session_id: int):
        from runner.models import Session

        self.gs_id, self.pseudonym, self.session_id = group_session_id, pseudonym, session_id
        run = Session.objects.select_related("experiment").get(pk=session_id)
        self.script = load(module_for(run.experiment))
        self.rng = random.Random(f"{group_session_id}:{pseudonym}")
        self.earlier: list[dict] = []
        self.tries: dict[int, int] = {}

    def turn(self) -> bool:
        """Answer the current step if it is this participant's to answer; False: stop."""
        from groups.models import Membership
        from runner.models import Session

        member = Membership.objects.select_related("group_session").filter(
            group_session_id=self.gs_id, pseudonym=self.pseudonym
        ).first()  # fmt: skip
        if member is None or not member.bot or member.status in ("kicked", "finished"):
            return False  # the person took over (or the run is over for them)
        gs = member.group_session
        if gs.phase in ("ended", "aborted"):
            return False
        if gs.phase != "running" or member.responded_step == gs.step or self.tries.get(gs.step, 0) >= TRIES_PER_STEP:
            return True
        run = Session.objects.select_related("experiment").get(pk=self.session_id)
        if (run.state or {}).get("finished"):
            return False
        self.answer(run, gs.step)
        return True

    def answer(self, run, step: int) -> None:
        from groups import live_content, selectors

        visit = live_content.ident(run)
        if visit is None or visit["visit"] != selectors.group_round(self.gs_id, visit["order"], step):
            return  # the person answered this step a moment ago (their run is at the next visit)
        content = live_content.build(run, step=step)
        if content is None:
            self.tries[step] = TRIES_PER_STEP  # not at this step's visit (the runner moves it on)
            return
        self.tries[step] = self.tries.get(step, 0) + 1
        page = parse_fragment(content["html"], form=content["form"])
        page.timeline, page.lockstep = content["timeline"], {"step": str(step)}
        page.hidden.update({"_order": str(visit["order"]), "_visit": str(visit["visit"])})
        chosen = self.choose(page, content.get("shared_params") or {})
        data = QueryDict(mutable=True)
        fields = [*page.hidden.items(), ("_nonce", visit["nonce"]), ("_action", chosen.pop("_action", "next"))]
        for name, value in fields + posted_fields(page, chosen):
            data.appendlist(name, value)
        if self.submit(run, visit, data) == "stored":
            answers = {k: v for k, v in chosen.items() if k != "_jspsych"}
            self.earlier.append({"form": page.form_name, "visit": visit["visit"], "step": step, "answers": answers})
            self.log(step, visit)

    def choose(self, page, shared_params: dict) -> dict:
        screen = screen_for(0, page, shared_params=shared_params, earlier=self.earlier, rng=self.rng)
        try:
            return self.script.answers(screen)
        except ExpectationFailed as exc:  # a real session goes on: the default bot's answers
            logger.warning("stand-in for %s: %s; the default bot answers", self.pseudonym, exc)
            return self.script.__class__().answers(screen)

    def submit(self, run, visit: dict, data: QueryDict) -> str:
        """Store the answer as the live page's POST is stored; its outcome's kind."""
        from runner import batching
        from runner.errors import RunError
        from runner.submissions import Submission

        submission = Submission(session_id=run.pk, order=visit["order"], visit=visit["visit"], nonce=visit["nonce"],
                                data=data, experiment_id=run.experiment_id, run_token=run.run_token)  # fmt: skip
        try:
            result = batching.submit(submission, key=run.experiment_id)
        except RunError as exc:  # the group moved on, the step was closed...: nothing stored
            logger.info("stand-in for %s: %s", self.pseudonym, exc.code)
            return exc.code
        if result.kind == "invalid":
            logger.warning("stand-in for %s: answer refused: %s", self.pseudonym, dict(result.form.errors))
        return result.kind

    def log(self, step: int, visit: dict) -> None:
        from groups.models import StepLog

        at = int(time.time() * 1000)
        StepLog.objects.create(
            group_session_id=self.gs_id, step=step, action="bot_answered",
            at=datetime.fromtimestamp(at / 1000, tz=UTC), at_ms=at,
            data={"participant": self.pseudonym, "bot": True, "order": visit["order"], "visit": visit["visit"]},
        )  # fmt: skip
