"""A step answered for the page (a stand-in bot while the participant was away, issue 20)
moves the run to its next visit without the page: the page must answer the next step
with that visit, not the one it kept (docs/groups.md, "The live page").

Found in the dropout rehearsal (tests/bots/test_dropout_standin.py), whose bots do what
the page does: a participant back from a dropout answered the next step with the visit
the stand-in had answered; the server took it for a resend ("stored": false), the page
waited, and the answer was nowhere until the step's timer ran out a minute later."""

from __future__ import annotations

import pytest

from bots.standin import StandIn
from groups.models import Membership
from runner.models import Response, Session
from tests.e2e.test_live_page import _advance, _mode, _one_page_started

PASSWORD = "pw-live-for-1234"


@pytest.mark.browser
def test_the_page_answers_the_step_after_one_answered_for_it(daphne_server, new_page, transactional_db):
    gs, console, page, navigations, errors = _one_page_started(
        new_page, daphne_server.url, title="Answered for", username="standin", password=PASSWORD, rounds=3
    )

    member = Membership.objects.get(group_session=gs)
    StandIn(gs.pk, member.pseudonym, member.session_id).answer(Session.objects.get(pk=member.session_id), 0)
    _mode(page, "waiting")  # answered for it: the page waits like after its own answer
    _advance(console, 0)
    _mode(page, "form", 1)
    page.get_by_label("No").check()
    page.get_by_role("button", name="Next").click()
    _mode(page, "waiting")

    rows = Response.objects.filter(session_id=member.session_id, item="warm").order_by("step")
    assert [row.step for row in rows] == [0, 1]  # the stand-in's, then the page's own
    assert page.locator("[data-answer-message]").is_hidden()  # no "replaced" notice: it was not refused
    assert navigations == [] and errors == []
    page.close()
