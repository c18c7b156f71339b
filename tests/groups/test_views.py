"""HTTP pages: create, start, console, notes, and the two attach pages."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from groups.models import Group, GroupSession
from tests.caches import clear_own_cache
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_rate_limits():
    clear_own_cache()
    yield
    clear_own_cache()


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def test_pages_need_an_experimenter(client, db):
    for url in ("/group/create/", "/group/session/start/", "/group/session/attach/experimenter/"):
        response = client.get(url)
        assert response.status_code == 302 and "/editor/login/" in response["Location"]
    plain = get_user_model().objects.create_user("plain", password="pw-123456")
    client.force_login(plain)
    assert client.get("/group/session/start/").status_code == 302


def test_create_group_then_start_session(staff_client, experiment):
    response = staff_client.post(f"/group/create/?experiment={experiment.pk}", {"name": "Lab B", "description": ""})
    group = Group.objects.get(name="Lab B")
    assert response.status_code == 302
    assert response["Location"] == f"/group/session/start/?group={group.pk}&experiment={experiment.pk}"
    page = staff_client.get(response["Location"])
    assert page.status_code == 200 and experiment.title in page.content.decode()
    response = staff_client.post("/group/session/start/", {"experiment": experiment.pk, "group": group.pk, "size": 3})
    gs = GroupSession.objects.get()
    assert response["Location"] == f"/group/session/status/{gs.pk}/"
    assert gs.group == group and gs.expected_size == 3


def test_start_creates_a_new_group_inline(staff_client, experiment):
    response = staff_client.post(
        "/group/session/start/", {"experiment": experiment.pk, "group": "", "new_group": "Lab 2, Tuesday"}
    )
    gs = GroupSession.objects.get()
    assert response["Location"] == f"/group/session/status/{gs.pk}/"
    assert gs.group == Group.objects.get(name="Lab 2, Tuesday")


def test_start_without_a_group(staff_client, experiment):
    response = staff_client.post("/group/session/start/", {"experiment": experiment.pk, "group": ""})
    gs = GroupSession.objects.get()
    assert response["Location"] == f"/group/session/status/{gs.pk}/" and gs.group is None


def test_start_refuses_a_group_and_a_new_one(staff_client, experiment):
    group = Group.objects.create(name="Lab A")
    response = staff_client.post(
        "/group/session/start/", {"experiment": experiment.pk, "group": group.pk, "new_group": "Lab B"}
    )
    assert response.status_code == 200 and "not both" in response.content.decode()
    assert not GroupSession.objects.exists() and not Group.objects.filter(name="Lab B").exists()


def test_start_lists_only_group_experiments(staff_client, experiment):
    solo = ExperimentFactory(is_group=False, title="Solo study")
    page = staff_client.get("/group/session/start/").content.decode()
    assert experiment.title in page and solo.title not in page
    response = staff_client.post("/group/session/start/", {"experiment": solo.pk, "group": ""})
    assert response.status_code == 200 and not GroupSession.objects.exists()


def test_console_shows_codes_and_socket(staff_client, gs):
    page = staff_client.get(f"/group/session/status/{gs.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert gs.participant_code in html and gs.experimenter_code in html
    assert f"/ws/group/{gs.pk}/experimenter/" in html and "group_console.js" in html and "initial-state" in html


def test_console_of_unattached_session_asks_for_code(client, gs, db):
    other = get_user_model().objects.create_user("x", password="pw-123456", is_staff=True)
    client.force_login(other)
    response = client.get(f"/group/session/status/{gs.pk}/")
    assert response["Location"] == "/group/session/attach/experimenter/"
    assert client.post(f"/group/session/status/{gs.pk}/notes/", {"notes": "x"}).status_code == 403
    assert client.get("/group/session/status/999999/").status_code == 404


def test_notes_autosave(staff_client, gs):
    response = staff_client.post(f"/group/session/status/{gs.pk}/notes/", {"notes": "P3 arrived late"})
    assert response.json() == {"ok": True}
    gs.refresh_from_db()
    assert gs.notes == "P3 arrived late"
    assert staff_client.get(f"/group/session/status/{gs.pk}/notes/").status_code == 405


def test_participant_code_is_case_insensitive_and_redirects_to_run(client, gs):
    assert client.get("/group/session/attach/participant/").status_code == 200
    response = client.post("/group/session/attach/participant/", {"code": f" {gs.participant_code.lower()} "})
    assert response.status_code == 302
    assert response["Location"] == f"/run/{gs.experiment_id}/start/?tc={gs.ticket.code}"


def test_participant_code_limited_to_experiment(client, gs):
    other = ExperimentFactory(is_group=True)
    url = f"/group/session/attach/participant/?experiment={other.pk}"
    assert client.post(url, {"code": gs.participant_code}).status_code == 400
    url = f"/group/session/attach/participant/?experiment={gs.experiment_id}"
    page = client.get(url)
    assert f'value="{gs.experiment_id}"' in page.content.decode()
    assert client.post(url, {"code": gs.participant_code}).status_code == 302


def test_wrong_codes_are_rate_limited(client, gs):
    for _ in range(settings.CODE_ATTEMPTS_PER_MINUTE):
        response = client.post("/group/session/attach/participant/", {"code": "ZZZZ"})
        assert response.status_code == 400
        assert "No open group session" in response.content.decode()
    response = client.post("/group/session/attach/participant/", {"code": gs.participant_code})
    assert response.status_code == 429  # even the right code, until the minute is over
    other = client.post("/group/session/attach/participant/", {"code": "ZZZZ"}, REMOTE_ADDR="10.9.9.9")
    assert other.status_code == 400


def test_ended_session_code_no_longer_works(client, gs, staff):
    from groups import services

    services.group_session_abort(group_session=gs, by=staff)
    assert client.post("/group/session/attach/participant/", {"code": gs.participant_code}).status_code == 400


def test_attach_experimenter(client, gs):
    other = get_user_model().objects.create_user("assistant", password="pw-123456", is_staff=True)
    client.force_login(other)
    assert client.post("/group/session/attach/experimenter/", {"code": "ZZZZ"}).status_code == 400
    assert client.post("/group/session/attach/experimenter/", {"code": gs.participant_code}).status_code == 400
    response = client.post("/group/session/attach/experimenter/", {"code": gs.experimenter_code.lower()})
    assert response["Location"] == f"/group/session/status/{gs.pk}/"
    assert gs.experimenters.filter(pk=other.pk).exists()
    assert client.get(response["Location"]).status_code == 200


def test_console_answers_of_one_participant_at_the_current_step(staff_client, gs, join, client):
    from tests.factories import ResponseFactory

    session, membership = join()
    other, _ = join()
    ResponseFactory(session=session, item="warmth", value=5, group_session=gs, step=gs.step)
    ResponseFactory(session=session, item="pets", value=["Cat", "Dog"], group_session=gs, step=gs.step, visit=2)
    ResponseFactory(session=session, item="warmth", value=1, group_session=gs, step=gs.step + 1, visit=3)  # not now
    ResponseFactory(session=other, item="warmth", value=2, group_session=gs, step=gs.step)  # someone else
    url = f"/group/session/status/{gs.pk}/answers/"
    data = staff_client.get(url, {"participant": membership.pseudonym}).json()
    assert data == {"ok": True, "step": gs.step,
                    "answers": [{"item": "warmth", "value": 5}, {"item": "pets", "value": ["Cat", "Dog"]}]}  # fmt: skip
    assert staff_client.get(url, {"participant": "NOBODY"}).status_code == 404
    stranger = get_user_model().objects.create_user("stranger", password="pw-123456", is_staff=True)
    client.force_login(stranger)  # staff, but not attached to this group session
    assert client.get(url, {"participant": membership.pseudonym}).status_code == 403
