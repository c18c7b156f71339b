"""A content GET's reply describes where the run was when the server answered it; a state
that reached the page after that is newer and decides (docs/groups.md, "The live page").

Measured in the Chromium benchmark before the fix (bench/screen_browser.py, 8 pages): the
page's 1.5 s fallback timer for pushed content fired after the participant had answered,
its GET was answered "waiting" for the step just answered, the reply arrived after the
next step's state and put that step away again, and six of eight pages showed it 1.6 s
late (the next fallback fetched it back)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.test_live_page import _advance, _mode, _one_page_started

PASSWORD = "pw-live-stale-1234"
MODE = "() => { const d = document.querySelector('[data-lockstep]').dataset; return [d.mode, d.step]; }"


def _until(page, condition, seconds=15.0):
    """Let Playwright dispatch its events (route handlers) until ``condition()``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


@pytest.mark.browser
def test_a_content_reply_older_than_the_state_does_not_take_the_new_step_away(
    daphne_server, new_page, transactional_db
):
    _gs, console, page, navigations, errors = _one_page_started(
        new_page, daphne_server.url, title="Stale reply", username="stale", password=PASSWORD
    )
    page.get_by_label("Yes").check()
    page.get_by_role("button", name="Next").click()
    _mode(page, "waiting")

    # The page asks where the run is now (as its fallback timer or "Try again" does); the
    # server answers "waiting" (step 0 is answered), and the reply is held back until the
    # next step is on the page.
    held = []

    def hold(route):
        held.append((route, route.fetch()))

    page.route("**/group/live/*/content/", hold)
    page.evaluate("document.querySelector('[data-timeline-retry]').click()")
    _until(page, lambda: held)
    assert held[0][1].json()["mode"] == "waiting"

    _advance(console, 0)
    _mode(page, "form", 1)
    route, response = held[0]
    route.fulfill(response=response)
    page.wait_for_function("() => !window.ensembleLive.page.fetching")
    page.wait_for_timeout(300)

    assert page.evaluate(MODE) == ["form", "1"]  # still on screen: the older reply did not put it away
    entry = page.evaluate("window.ensembleLive.log.find(e => e.step === 1)")
    assert entry["reveal_at"] is not None and entry["late_ms"] == 0, entry
    assert navigations == [] and errors == []
    page.close()
