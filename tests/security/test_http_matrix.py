"""Every POST endpoint, without a CSRF token and with forged ids (another experiment's,
another participant's run, another group session, ids that do not exist): each is
refused with a clear page and changes nothing in the database (issue 14).

The cases are data: ``CSRF_CASES`` and ``FORGED_CASES`` name who posts, where, what,
and the statuses and page text expected. ``World`` builds what they refer to."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from groups import services as group_services
from tests.runner.builders import build_experiment, build_lockstep_experiment, current, start

pytestmark = pytest.mark.django_db

SURVEY = [{"name": "one", "questions": [{"key": "likes"}]}, {"name": "end", "handler": "form_end_session"}]
MISSING = 987654  # an id no row has
CSRF_PAGE = b'data-error-code="csrf"'  # templates/403_csrf.html
NO_RUN = b'data-error-code="no_run"'


@dataclass
class World:
    boss: object  # superuser: every editor permission
    assistant: object  # staff, attached to no group session
    a: object  # solo experiment with two participants
    b: object  # another solo experiment with one participant
    group_exp: object
    gs: object  # the boss's group session
    gs_other: object  # a group session the assistant is not attached to
    p1: object  # participant 1's run in a (session)
    p2: object
    pb: object
    browsers: dict  # participant name -> Client holding its run cookie

    def client(self, who: str, *, csrf: bool) -> Client:
        """A client of ``who`` (anon, boss, assistant, p1, p2, pb); ``csrf``: Django checks
        the token, which the client then does not send."""
        client = Client(enforce_csrf_checks=csrf)
        if who in self.browsers:
            client.cookies = self.browsers[who].cookies
        elif who in ("boss", "assistant"):
            client.force_login(getattr(self, who))
        return client


@pytest.fixture
def world(settings, tmp_path) -> World:
    settings.MEDIA_ROOT = tmp_path
    settings.EXPORTS_IN_BACKGROUND = False
    user = get_user_model()
    boss = user.objects.create_superuser("boss", password="pw-boss-123456")
    assistant = user.objects.create_user("assistant", password="pw-123456", is_staff=True)
    a, b = build_experiment(SURVEY), build_experiment(SURVEY)
    group_exp = build_lockstep_experiment(2)
    gs = group_services.start_group_session(experiment=group_exp, group="lab A", size=2, experimenter=boss)
    gs_other = group_services.start_group_session(experiment=group_exp, group="lab B", size=2, experimenter=boss)
    browsers = {name: Client() for name in ("p1", "p2", "pb")}
    p1, p2, pb = start(browsers["p1"], a), start(browsers["p2"], a), start(browsers["pb"], b)
    return World(boss, assistant, a, b, group_exp, gs, gs_other, p1, p2, pb, browsers)


def _answer(session, **override) -> dict:
    cur = current(session)
    return {"_order": cur["order"], "_visit": cur["visit"], "_nonce": cur["nonce"], "q-likes": "Yes", **override}


def _table() -> dict:
    return {"table": SimpleUploadedFile("t.csv", b"name,location\nx,x.png\n", content_type="text/csv")}


# (name, who, path(world), data(world)): every POST endpoint with a body that would be
# accepted with the token. Expected: 403 with Django's CSRF page, nothing changed.
CSRF_CASES = [
    ("run answer", "p1", lambda w: f"/run/{w.a.pk}/", lambda w: _answer(w.p1)),
    ("group run answer", "anon", lambda w: f"/run/{w.group_exp.pk}/", lambda w: {"_order": 1}),
    ("live page answer", "anon", lambda w: f"/group/live/{w.group_exp.pk}/answer/", lambda w: {"_order": 1}),
    ("attach participant", "anon", lambda w: "/group/session/attach/participant/",
     lambda w: {"code": w.gs.participant_code}),
    ("attach experimenter", "assistant", lambda w: "/group/session/attach/experimenter/",
     lambda w: {"code": w.gs.experimenter_code}),
    ("group create", "boss", lambda w: "/group/create/", lambda w: {"name": "Lab C", "description": ""}),
    ("session start", "boss", lambda w: "/group/session/start/",
     lambda w: {"experiment": w.group_exp.pk, "group": w.gs.group_id}),
    ("session notes", "boss", lambda w: f"/group/session/status/{w.gs.pk}/notes/", lambda w: {"notes": "forged"}),
    ("stimulus import", "boss", lambda w: "/run/editor/stimuli/import/", lambda w: _table()),
    ("export start", "boss", lambda w: f"/editor/exports/{w.a.slug}/",
     lambda w: {"format": "json", "columns": ["session"]}),
    ("delete previews", "boss", lambda w: f"/editor/exports/{w.a.slug}/delete-previews/", lambda w: {}),
    ("set exclusion", "boss", lambda w: f"/editor/exports/{w.a.slug}/sessions/{w.p1.pk}/exclusion/",
     lambda w: {"action": "exclude_session", "reason": "forged"}),
    ("admin delete experiment", "boss", lambda w: f"/editor/runner/experiment/{w.b.pk}/delete/",
     lambda w: {"post": "yes"}),
    ("admin change experiment", "boss", lambda w: f"/editor/runner/experiment/{w.b.pk}/change/",
     lambda w: {"slug": "renamed", "title": "Renamed"}),
    ("admin add ticket", "boss", lambda w: "/editor/runner/ticket/add/", lambda w: {"experiment": w.a.pk}),
    ("timeline failure report", "p1", lambda w: f"/run/{w.a.pk}/timeline-failure/",
     lambda w: {"kind": "plugin", "message": "forged"}),
    ("skip a failed form", "boss", lambda w: f"/run/editor/failures/{MISSING}/skip/", lambda w: {}),
    ("survey builder save", "boss", lambda w: f"/editor/runner/experiment/{w.a.pk}/builder/save/",
     lambda w: {"definition": "{}"}),
    ("survey builder preview run", "boss", lambda w: f"/editor/runner/experiment/{w.a.pk}/preview/", lambda w: {}),
    ("login", "anon", lambda w: "/editor/login/", lambda w: {"username": "boss", "password": "pw-boss-123456"}),
    ("logout", "boss", lambda w: "/editor/logout/", lambda w: {}),
    ("rehearse", "boss", lambda w: f"/editor/bots/rehearse/{w.a.pk}/", lambda w: {"count": "3"}),
]  # fmt: skip

# (name, who, path(world), data(world), statuses, page text): with the token, but ids that
# are not the poster's to use.
FORGED_CASES = [
    ("run of another experiment", "p1", lambda w: f"/run/{w.b.pk}/", lambda w: _answer(w.pb), {403}, NO_RUN),
    ("run of no experiment", "p1", lambda w: f"/run/{MISSING}/", lambda w: _answer(w.p1), {403}, NO_RUN),
    ("run without a run cookie", "anon", lambda w: f"/run/{w.a.pk}/", lambda w: _answer(w.p1), {403}, NO_RUN),
    ("group run without a run cookie", "anon", lambda w: f"/run/{w.group_exp.pk}/", lambda w: {"_order": 1},
     {403}, NO_RUN),
    ("live page answer without a run cookie", "anon", lambda w: f"/group/live/{w.group_exp.pk}/answer/",
     lambda w: {"_order": 1}, {404}, b'"code": "no_run"'),
    # another participant's visit (order, visit, nonce) posted with one's own cookie: stale,
    # answered with a redirect and a message (docs/security.md), stored nowhere
    ("another participant's visit", "p1", lambda w: f"/run/{w.a.pk}/", lambda w: _answer(w.p2), {302}, b""),
    ("a visit that does not exist", "p1", lambda w: f"/run/{w.a.pk}/", lambda w: _answer(w.p1, _order=99, _visit=7),
     {302}, b""),
    ("notes of a session not attached", "assistant", lambda w: f"/group/session/status/{w.gs_other.pk}/notes/",
     lambda w: {"notes": "forged"}, {403}, b"Not attached"),
    ("notes of no session", "boss", lambda w: f"/group/session/status/{MISSING}/notes/", lambda w: {"notes": "x"},
     {404}, b""),
    ("participant code for another experiment", "anon",
     lambda w: f"/group/session/attach/participant/?experiment={w.a.pk}", lambda w: {"code": w.gs.participant_code},
     {400}, b"No open group session has this code"),
    ("participant code for no experiment", "anon",
     lambda w: f"/group/session/attach/participant/?experiment={MISSING}", lambda w: {"code": w.gs.participant_code},
     {400}, b"No open group session has this code"),
    ("participant code as experimenter code", "assistant", lambda w: "/group/session/attach/experimenter/",
     lambda w: {"code": w.gs.participant_code}, {400}, b"No unexpired group session has this experimenter code"),
    ("session start for no experiment", "boss", lambda w: "/group/session/start/",
     lambda w: {"experiment": MISSING, "group": ""}, {200}, b"Select a valid choice"),
    ("session start for a solo experiment", "boss", lambda w: "/group/session/start/",
     lambda w: {"experiment": w.a.pk, "group": ""}, {200}, b"Select a valid choice"),
    ("exclusion of another experiment's session", "boss",
     lambda w: f"/editor/exports/{w.a.slug}/sessions/{w.pb.pk}/exclusion/", lambda w: {"action": "exclude_session"},
     {404}, b""),
    ("exclusion of no session", "boss", lambda w: f"/editor/exports/{w.a.slug}/sessions/{MISSING}/exclusion/",
     lambda w: {"action": "exclude_session"}, {404}, b""),
    ("exclusion under no experiment", "boss", lambda w: f"/editor/exports/no-such-slug/sessions/{w.p1.pk}/exclusion/",
     lambda w: {"action": "exclude_session"}, {404}, b""),
    ("export of no experiment", "boss", lambda w: "/editor/exports/no-such-slug/",
     lambda w: {"format": "json", "columns": ["session"]}, {404}, b""),
    ("previews of no experiment", "boss", lambda w: "/editor/exports/no-such-slug/delete-previews/", lambda w: {},
     {404}, b""),
    ("stimuli for no experiment", "boss", lambda w: "/run/editor/stimuli/import/",
     lambda w: {**_table(), "experiment": MISSING}, {200}, b"Select a valid choice"),
    ("admin change of no experiment", "boss", lambda w: f"/editor/runner/experiment/{MISSING}/change/",
     lambda w: {"slug": "x", "title": "x"}, {302}, b""),
    ("admin delete of no experiment", "boss", lambda w: f"/editor/runner/experiment/{MISSING}/delete/",
     lambda w: {"post": "yes"}, {302}, b""),
    ("editor posts by a participant", "p1", lambda w: f"/editor/exports/{w.a.slug}/sessions/{w.p1.pk}/exclusion/",
     lambda w: {"action": "exclude_session"}, {302}, b""),  # to the login page
    ("group notes by a participant", "p1", lambda w: f"/group/session/status/{w.gs.pk}/notes/",
     lambda w: {"notes": "x"}, {302}, b""),  # to the login page
]  # fmt: skip


def database_state() -> dict:
    """Every row of every table but Django's own sessions (a login writes there)."""
    state = {}
    for model in apps.get_models():
        if model._meta.label == "sessions.Session":
            continue
        state[model._meta.label] = [tuple(map(repr, row)) for row in model.objects.order_by("pk").values_list()]
    return state


@pytest.mark.parametrize(("name", "who", "path", "data"), CSRF_CASES, ids=[c[0] for c in CSRF_CASES])
def test_posts_without_a_csrf_token_are_refused_and_change_nothing(world, name, who, path, data):
    client, url, body = world.client(who, csrf=True), path(world), data(world)
    before = database_state()
    response = client.post(url, body)
    assert response.status_code == 403, (name, response.status_code)
    assert CSRF_PAGE in response.content
    assert database_state() == before


@pytest.mark.parametrize(("name", "who", "path", "data", "statuses", "text"), FORGED_CASES,
                         ids=[c[0] for c in FORGED_CASES])  # fmt: skip
def test_posts_with_forged_ids_are_refused_and_change_nothing(world, name, who, path, data, statuses, text):
    client, url, body = world.client(who, csrf=False), path(world), data(world)
    before = database_state()
    response = client.post(url, body)
    assert response.status_code in statuses, (name, response.status_code, response.content[:300])
    assert text in response.content
    assert response.status_code < 500
    assert database_state() == before


def test_the_matrix_covers_every_post_endpoint():
    """Every URL pattern of ours that takes a POST is in CSRF_CASES (the admin by example)."""
    from django.urls import get_resolver

    covered = {"runner:run", "bots:rehearse", "groups:attach_participant", "groups:attach_experimenter",
               "groups:create",
               "groups:session_start", "groups:session_notes", "runner:stimulus_import", "exports:experiment",
               "exports:delete_previews", "exports:set_exclusion", "runner:timeline_failure",
               "runner:skip_failure", "groups:live_answer"}  # fmt: skip
    get_only = {"runner:start", "bots:rehearsal", "runner:verify_email", "groups:session_status", "exports:index",
                "exports:job_status", "exports:job_download", "exports:sessions", "home", "healthz", "favicon",
                "runner:package_script", "groups:session_answers", "groups:session_projector",
                "groups:session_failures", "groups:session_store", "groups:live_content"}  # fmt: skip
    ours = set()
    for pattern in get_resolver().url_patterns:
        namespace = getattr(pattern, "namespace", None)
        if namespace == "admin":
            continue
        for sub in getattr(pattern, "url_patterns", [pattern]):
            ours.add(f"{namespace}:{sub.name}" if namespace else sub.name)
    assert ours == covered | get_only, ours ^ (covered | get_only)


def test_the_same_posts_done_right_do_change_the_database(world):
    """The control: what the matrix compares would show a change (an answer stored, an
    exclusion set, a group created)."""
    before = database_state()
    assert world.client("p1", csrf=False).post(f"/run/{world.a.pk}/", _answer(world.p1)).status_code == 302
    answered = database_state()
    assert answered["runner.Response"] != before["runner.Response"]
    boss = world.client("boss", csrf=False)
    url = f"/editor/exports/{world.a.slug}/sessions/{world.p1.pk}/exclusion/"
    assert boss.post(url, {"action": "exclude_session", "reason": "r"}).status_code == 302
    assert database_state()["runner.Session"] != answered["runner.Session"]
    assert boss.post("/group/create/", {"name": "Lab C", "description": ""}).status_code == 302
    assert len(database_state()["groups.Group"]) == len(answered["groups.Group"]) + 1
