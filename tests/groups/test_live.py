"""The live page's HTTP side (groups/live_views.py, groups/live_content.py, groups/live.py):
showing a step takes no group-session lock and writes nothing; answers without navigation
reply in JSON (stored, duplicate, inline errors, stale step, stale visit); onsets posted
with the answer are stored on the rows; starts_at is chosen once per step."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from groups import live, presence, services
from groups.models import StepOnset
from runner.models import Response
from tests.runner.builders import build_experiment, current, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(flow):
    return build_experiment(
        [
            {"name": "trial", "handler": "group_trial", "questions": [{"key": "warm", "choices": ["Yes", "No"]}],
             "repeat": 2, "goto": 1},
            {"name": "end", "handler": "form_end_session"},
        ],
        is_group=True, group_flow="tests.groups.flow_fixture",
    )  # fmt: skip


@pytest.fixture
def group(experiment, staff):
    gs = services.start_group_session(experiment=experiment, experimenter=staff)

    def join():
        client = Client()
        return client, start(client, experiment, gs.ticket)

    join.gs = gs
    return join


def answer(client, session, warm="Yes", *, step=0, ident=None, **extra):
    ident = ident or current(session)
    data = {"_order": ident["order"], "_visit": ident["visit"], "_nonce": ident["nonce"], "q-_group_step": step,
            "_onset_ms": "1796531938980", "_onset_late_ms": "0", **extra}  # fmt: skip
    if warm is not None:
        data["q-warm"] = warm
    return client.post(f"/group/live/{session.experiment_id}/answer/", data)


@pytest.fixture
def count_locks(monkeypatch):
    """How many times a group session's lock is taken (``groups.store.lock`` / ``send_lock``,
    the only ways to it)."""
    from groups import store

    taken = []
    for name in ("lock", "send_lock"):
        real = getattr(store, name)

        def counting(*args, real=real, **kwargs):
            taken.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(store, name, counting)
    return taken


def test_showing_a_step_takes_no_group_session_lock_and_writes_nothing(group, staff, count_locks):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    client.get(f"/run/{session.experiment_id}/")  # the first visit of a form notes when it was served
    count_locks.clear()
    with CaptureQueriesContext(connection) as queries:  # a reload, and the content GET
        page = client.get(f"/run/{session.experiment_id}/")
        content = client.get(f"/group/live/{session.experiment_id}/content/")
    assert page.status_code == 200 and "group_live.js" in page.content.decode()
    assert content.status_code == 200 and content.json()["mode"] == "form"
    assert count_locks == []  # no group-session lock taken by showing a step
    writes = [q["sql"] for q in queries.captured_queries if re.match(r"\s*(INSERT|UPDATE|DELETE)", q["sql"], re.I)]
    assert writes == []
    assert "FOR UPDATE" not in " ".join(q["sql"] for q in queries.captured_queries).upper()


def test_content_carries_the_questions_the_visit_and_starts_at(group, staff):
    client, session = group()
    before = client.get(f"/group/live/{session.experiment_id}/content/").json()
    assert before["mode"] == "waiting" and before["starts_at"] is None and before["content"] is None
    services.group_session_start(group_session=group.gs, by=staff)
    group.gs.refresh_from_db()
    from groups.store import load_state

    state, _ = load_state(group.gs)
    planned = live.starts_at(group.gs, state)
    reply = client.get(f"/group/live/{session.experiment_id}/content/").json()
    assert reply["mode"] == "form" and reply["step"] == 0 and reply["starts_at"] == planned
    assert reply["visit"] == {k: current(session)[k] for k in ("order", "visit", "nonce")}
    assert 'name="q-warm"' in reply["content"]["html"] and reply["content"]["loop_rounds"] == 2
    assert live.starts_at(group.gs, state) == planned  # chosen once per step


def test_an_answer_without_navigation_replies_in_json(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    ident = dict(current(session))
    reply = answer(client, session)
    assert reply.status_code == 200, reply.content
    body = reply.json()
    assert body["ok"] and body["stored"] and body["next"] == "wait" and body["visit"]["visit"] == 2
    row = Response.objects.get(session=session, item="warm")
    assert (row.step, row.onset_ms, row.onset_late_ms) == (0, 1796531938980, 0)
    again = answer(client, session, ident=ident)  # the same visit again: nothing stored
    assert again.status_code == 200 and again.json()["stored"] is False
    assert Response.objects.filter(session=session).count() == 1


def test_an_invalid_answer_comes_back_inline_and_stores_nothing(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    reply = answer(client, session, warm=None)
    assert reply.status_code == 400
    body = reply.json()
    assert body["code"] == "invalid" and "warm" in body["errors"] and "invalid-feedback" in body["html"]
    assert not Response.objects.filter(session=session).exists()


def test_a_stale_step_is_refused_with_its_code_and_stores_nothing(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    services.group_session_advance(group_session=group.gs, step=0, by=staff)  # advance anyway
    reply = answer(client, session, step=0)
    assert reply.status_code == 409 and reply.json()["code"] == "stale_step"
    assert not Response.objects.filter(session=session).exists()
    forged = answer(client, session, step=1, ident={"order": 1, "visit": 1, "nonce": "forged"})
    assert forged.status_code == 409 and forged.json()["code"] == "stale_visit"


def test_a_visit_answered_for_the_page_is_stale_at_the_next_step_not_a_duplicate(group, staff):
    """A page that kept a visit someone else answered (a stand-in bot while it was away)
    must not hear "stored" for the next step's answer: that answer would be lost."""
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    kept = dict(current(session))
    assert answer(client, session, warm="No").json()["stored"]  # the stand-in's, the page never saw it
    services.group_session_advance(group_session=group.gs, step=0, by=staff)
    reply = answer(client, session, step=1, ident=kept)
    assert reply.status_code == 409 and reply.json()["code"] == "stale_visit"
    assert answer(client, session, warm="No", step=0, ident=kept).json()["stored"] is False  # a resend still is
    assert list(Response.objects.filter(session=session).values_list("step", "value")) == [(0, "No")]
    fresh = answer(client, session, step=1)  # the visit the content GET gives
    assert fresh.status_code == 200 and fresh.json()["stored"]


def test_the_last_answer_of_the_loop_leaves_the_group_part(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    assert answer(client, session, step=0).json()["next"] == "wait"
    services.group_session_advance(group_session=group.gs, step=0, by=staff)
    body = answer(client, session, step=1).json()
    assert body["next"] == "leave" and body["url"] == f"/run/{session.experiment_id}/"


def test_without_a_run_cookie_the_routes_say_so(experiment):
    client = Client()
    assert client.get(f"/group/live/{experiment.pk}/content/").status_code == 404
    assert client.post(f"/group/live/{experiment.pk}/answer/", {}).status_code == 404


def test_reports_store_onsets_once_and_feed_the_console(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    pid = session.group_membership.pseudonym
    onset = {"participant": pid, "step": 0, "at": 1000.0, "late_ms": 0.0, "ready_at": 900.0}
    presence.record_reports(group_session=group.gs.pk, onsets=[onset], locations={pid: "trial"}, errors=[])
    presence.record_reports(group_session=group.gs.pk, onsets=[{**onset, "at": 5000.0}], locations={}, errors=[])
    assert list(StepOnset.objects.values_list("step", "onset_ms")) == [(0, 1000)]  # the first report kept
    assert live.console_onsets(group.gs.pk, 0) == [{"step": 0, "reported": 1, "spread_ms": 0, "late": []}]
    session.group_membership.refresh_from_db()
    assert session.group_membership.form == "trial"


def test_the_console_counts_each_recent_steps_onsets_newest_first(group):
    rows = [(1, "PB", 1000, 0), (1, "PA", 1003, 0), (1, "PC", 1040, 37), (2, "PA", 2000, 0), (2, "PB", 2001, 0),
            (2, "PD", 2090, 88), (2, "PC", 2060, 12), (0, "PA", 10, 0)]  # fmt: skip
    StepOnset.objects.bulk_create(
        StepOnset(group_session=group.gs, step=step, pseudonym=pid, onset_ms=at, late_ms=late)
        for step, pid, at, late in rows
    )
    assert live.console_onsets(group.gs.pk, 2) == [
        {"step": 2, "reported": 4, "spread_ms": 90, "late": ["PC", "PD"]},
        {"step": 1, "reported": 3, "spread_ms": 40, "late": ["PC"]},
        {"step": 0, "reported": 1, "spread_ms": 0, "late": []},
    ]
    assert [e["step"] for e in live.console_onsets(group.gs.pk, 6)] == [2]  # the latest ONSET_CONSOLE_STEPS only


BOUNDS = dict(margin=30, low=60, high=1500, default=150)


def test_one_steps_delay_is_its_slowest_page_without_the_far_outliers():
    assert live.step_delay([10.0] * 99 + [20.0]) == 20.0  # within the fence: the slowest page counts
    spread = [100.0 + i % 50 for i in range(199)]
    assert live.step_delay([*spread, 1000.0]) == 149.0  # one page's clock 900 ms off is dropped
    assert live.step_delay([40.0]) == 40.0
    # early in a loaded session: a third of the pages had only round trips of seconds, their ready_at 3 s off
    delays, rtts = [100.0 + i % 50 for i in range(140)] + [3100.0] * 60, [8.0] * 140 + [6000.0] * 60
    assert live.step_delay(delays, rtts) == 149.0  # the fence alone would keep them: they are 30 %
    assert live.trusted([10.0, 20.0], [None, 90.0]) == [10.0, 20.0]  # one known round trip: its own median
    assert live.trusted([10.0, 20.0], [None, 900.0]) == [10.0]  # never a round trip above RTT_LIMIT_MS
    # the start of a loaded session: every page's estimate is seconds wide: the step says nothing
    assert live.trusted([3100.0, 2900.0], [6000.0, 5000.0]) == [] and live.step_delay([3100.0], [6000.0]) is None
    assert live.trusted([10.0, 20.0, 30.0], [5.0, 25.0, 80.0]) == [10.0, 20.0]  # <= max(20, 3 x 25)


def test_the_lead_time_is_the_lower_median_of_the_latest_steps_within_its_bounds():
    assert live.choose_lead([], None, **BOUNDS) == 150  # nothing known: the default
    assert live.choose_lead([10.0], None, **BOUNDS) == 60  # 10 + 30, kept at the minimum
    assert live.choose_lead([100.0, 400.0], None, **BOUNDS) == 130  # one slow step of two does not set it
    assert live.choose_lead([100.0, 400.0, 420.0], None, **BOUNDS) == 430  # two of three: the group got slower
    assert live.choose_lead([5000.0, 6000.0, 7000.0], None, **BOUNDS) == 1500  # the maximum
    assert live.choose_lead([100.0], 900.0, **BOUNDS) == 130  # the group's own steps before the estimate


def test_a_groups_first_step_is_estimated_from_this_processs_ms_per_page():
    assert live.first_estimate([], 100) is None and live.first_estimate([1.0], 0) is None
    assert live.first_estimate([0.5, 1.0, 4.0], 200) == 200.0  # the median rate times the pages
    assert live.choose_lead([], live.first_estimate([0.5, 1.0, 4.0], 200), **BOUNDS) == 230


def test_reported_delays_are_kept_per_group_session_with_the_start(group, settings):
    live.forget_samples()
    settings.GROUP_LIVE_LEAD_STEPS, settings.GROUP_LIVE_LEAD_MARGIN_MS = 3, 30
    settings.GROUP_LIVE_LEAD_MIN_MS, settings.GROUP_LIVE_LEAD_MAX_MS = 60, 1500
    gs = group.gs
    for step in range(5):
        live._known[live._key(gs, step)] = (1000 * step + 500, 1000 * step)
    live.note_delay(gs, 0, 400.0)  # the start counts: the only measure before step 1
    assert live.lead_ms(gs, 4) == 430
    for step, ready in ((1, 1100.0), (2, 2090.0), (3, 3120.0), (4, 4200.0)):
        live.note_delay(gs, step, ready)
    assert live.lead_ms(gs, 4) == 150  # steps 2-4 (90, 120, 200): step 0 and 1 are gone; 120 + 30
    live.note_delay(gs, 1, 1900.0)  # a late report of a step already dropped stays out
    assert live.lead_ms(gs, 4) == 150
    other = type(gs)(pk=gs.pk + 1000, participant_code="OTHER")
    assert live.lead_ms(other, 2) == 270  # a new group: 120 ms per page (the median step here, 1 page) x 2 + 30
    live.forget_samples()


def test_a_reload_reads_the_experiments_forms_and_questions_once(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    with CaptureQueriesContext(connection) as queries:  # the entry: the runner's general path
        assert client.get(f"/run/{session.experiment_id}/").status_code == 200
    # The short path declines a first visit after its read (PostgreSQL: one statement with
    # fingerprints of the forms and questions, none of their rows; elsewhere three); the
    # general path then reads the forms and the questions once each (and notes when the
    # visit was served).
    sql = [q["sql"] for q in queries.captured_queries]
    short = 0 if connection.vendor == "postgresql" else 1
    assert sum('FROM "runner_experimentxform" t0' in s for s in sql) == 1 + short, sql
    assert sum('FROM "runner_formxquestion" t0' in s for s in sql) == 1 + short, sql
    with CaptureQueriesContext(connection) as queries:  # a reload: groups.live_page renders a shell
        assert client.get(f"/run/{session.experiment_id}/").status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 3 and sum('FROM "runner_formxquestion" t0' in s for s in sql) == 1, sql


def test_the_live_page_embeds_the_current_step_for_a_reload(group, staff):
    client, session = group()
    services.group_session_start(group_session=group.gs, by=staff)
    html = client.get(f"/run/{session.experiment_id}/").content.decode()
    initial = json.loads(re.search(r'id="live-initial"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert initial["mode"] == "form" and initial["content"]["html"] is None  # the questions are in the page
    assert 'name="q-warm"' in html
    answer(client, session)
    html = client.get(f"/run/{session.experiment_id}/").content.decode()
    initial = json.loads(re.search(r'id="live-initial"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert initial["mode"] == "waiting" and 'name="q-warm"' not in html  # an answered step is not shown again


def test_the_consoles_onsets_are_one_statement_unless_a_page_was_late(group):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    StepOnset.objects.bulk_create(
        StepOnset(group_session=group.gs, step=3, pseudonym=pid, onset_ms=at, late_ms=0)
        for pid, at in (("PA", 5), ("PB", 9))
    )
    with CaptureQueriesContext(connection) as in_time:
        assert live.console_onsets(group.gs.pk, 3) == [{"step": 3, "reported": 2, "spread_ms": 4, "late": []}]
    StepOnset.objects.filter(pseudonym="PB").update(late_ms=20)
    with CaptureQueriesContext(connection) as late:
        assert live.console_onsets(group.gs.pk, 3)[0]["late"] == ["PB"]
    assert (len(in_time), len(late)) == (1, 2)
    assert live.console_onsets(group.gs.pk + 1, 3) == []  # another group session's: none
