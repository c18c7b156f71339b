"""The live page's reveal in real Chromium (docs/groups.md, "The live page",
"Synchronised onset"), with a long lead (1.5 s) so that the moments before the reveal
can be looked at: the step is in the page and laid out, veiled under the waiting
screen, before ``starts_at``; it is revealed in the frame nearest ``starts_at`` and the
onset reported is that frame's time on the server clock; a page whose frame came late
reports how late."""

from __future__ import annotations

import math

import pytest
from django.contrib.auth import get_user_model

from groups import services
from groups.models import StepOnset
from tests.e2e.pages import attach_console
from tests.e2e.test_live_page import _join, _mode
from tests.runner.builders import build_lockstep_experiment

PASSWORD = "pw-live-reveal-1234"
LEAD_MS = 1500
HALF_FRAME_MS = 1000 / 60 / 2

VEILED = """() => {
  const log = window.ensembleLive.log[0], stage = document.querySelector('[data-stage]');
  const waiting = document.querySelector('[data-waiting]');
  return {ready: log && log.ready_at != null, revealed: !!(log && log.reveal_at != null),
          serverNow: Date.now() + (window.ensembleLive.socket.offsetMs || 0), startsAt: log && log.starts_at,
          hidden: stage.hidden, veiled: stage.classList.contains('live-veiled'),
          visibility: getComputedStyle(stage).visibility, height: stage.offsetHeight,
          inputs: stage.querySelectorAll('[data-questions] input').length,
          waitingShown: getComputedStyle(waiting).visibility === 'visible' && !waiting.hidden};
}"""


@pytest.mark.browser
def test_the_step_is_laid_out_veiled_then_revealed_on_the_frame_nearest_starts_at(
    live_server_factory, new_page, transactional_db
):
    server = live_server_factory(
        env={"GROUP_LIVE_LEAD_DEFAULT_MS": str(LEAD_MS), "GROUP_LIVE_LEAD_MIN_MS": str(LEAD_MS)}
    )
    try:
        get_user_model().objects.create_user("reveal", password=PASSWORD, is_staff=True)
        experiment = build_lockstep_experiment(2, title="Live reveal")
        gs = services.start_group_session(experiment=experiment, size=1)
        console = new_page()
        attach_console(console, server.url, gs, username="reveal", password=PASSWORD)
        page, navigations, errors = _join(new_page, server.url, experiment, gs, 0)
        console.locator("[data-participants] tr", has_text="online").first.wait_for()
        console.get_by_role("button", name="Start", exact=True).click()

        page.wait_for_function("() => (window.ensembleLive.log[0] || {}).ready_at != null", timeout=15000)
        before = page.evaluate(VEILED)
        assert not before["revealed"] and before["serverNow"] < before["startsAt"], before  # the lead is 1.5 s
        # Built and laid out before starts_at, invisible under the waiting screen.
        assert not before["hidden"] and before["veiled"] and before["visibility"] == "hidden", before
        assert before["height"] > 0 and before["inputs"] > 0 and before["waitingShown"], before

        _mode(page, "form", 0)
        entry = page.evaluate("window.ensembleLive.log[0]")
        assert entry["late_ms"] == 0, entry
        # The onset is the reveal frame's time on the server clock: the frame nearest starts_at
        # (half a frame either side, 2 ms for rounding and the clock estimate's changes).
        assert abs(entry["onset_ms"] - entry["starts_at"]) <= HALF_FRAME_MS + 2, entry
        assert entry["frame_at"] <= entry["reveal_at"] and entry["ready_at"] < entry["frame_at"], entry
        after = page.evaluate(VEILED)
        assert not after["veiled"] and after["visibility"] == "visible" and not after["waitingShown"], after
        page.wait_for_function("() => window.ensembleLive.log[0].next_frame_at != null")
        assert page.evaluate("window.ensembleLive.log[0].next_frame_at") > entry["frame_at"]

        console.locator("[data-onsets] tr").first.wait_for(timeout=15000)  # the reports were stored
        kept = StepOnset.objects.filter(group_session=gs, step=0)
        js_round = math.floor(entry["onset_ms"] + 0.5)  # the page sends Math.round (Python's round is half-even)
        assert [(o.onset_ms, o.late_ms) for o in kept] == [(js_round, 0)]
        assert navigations == [] and errors == []
        page.close()
        console.locator("[data-participants] tr", has_text="offline").first.wait_for(timeout=20000)
    finally:
        server.stop()
