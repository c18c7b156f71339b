"""The lobby (issue 20): arrivals through /group/session/attach/participant/ are placed
into the open session until max_size, later ones wait as standby; the session starts by
itself at min_size (unless an experimenter's console is open: then its Start confirms,
and closing the last console starts it); who is not placed
within wait_seconds is released with the completion code."""

from __future__ import annotations

import pytest

from groups import flowcontrol, flowservices, presence, services, store, timers
from groups.models import GroupSession, Membership, StepLog, Timer
from realtime.ports import CONSOLE
from runner.models import Session, Ticket
from tests.factories import SessionFactory
from tests.runner.builders import build_lockstep_experiment

pytestmark = pytest.mark.django_db(transaction=True)
LOBBY = {"min_size": 2, "max_size": 2, "wait_seconds": 60, "release_completion_code": "C1A2B3"}


@pytest.fixture
def lobby_experiment():
    experiment = build_lockstep_experiment(2, title="Lobby study")
    experiment.lobby = dict(LOBBY)
    experiment.save()
    return experiment


def arrive(gs):
    session = SessionFactory(experiment=gs.experiment, ticket=Ticket.objects.get(pk=gs.ticket_id))
    return session, services.attach_participant(session=session, ticket=session.ticket)


def fire_all_due():
    Timer.objects.filter(fired_ms__isnull=True).update(due_ms=timers.now_ms() - 1)
    return timers.fire_due("test")


def test_places_until_max_size_and_starts_by_itself_at_min_size(lobby_experiment):
    gs = services.start_group_session(experiment=lobby_experiment)  # an online session: nobody attached
    arrive(gs)
    view = flowcontrol.lobby_view(
        flowcontrol.LobbyPolicy.from_definition(gs.experiment.lobby), services.load_state(gs)[0]
    )
    assert view["waiting_for"] == 1 and view["placed"] == 1
    arrive(gs)
    _, third = arrive(gs)
    assert Membership.objects.get(pk=third.pk).status == "standby"
    assert Timer.objects.get(kind="lobby_start").fired_ms is None
    timers.fire_due("test")  # the start is due at once; releases are a minute away
    gs.refresh_from_db()
    assert gs.phase == "running"
    assert StepLog.objects.get(group_session=gs, action="started").data == {"by": "auto"}
    fire_all_due()  # a minute later: the standby participant is released, the placed ones are not
    statuses = sorted(Membership.objects.filter(group_session=gs).values_list("status", flat=True))
    assert statuses.count("released") == 1 and "standby" not in statuses
    assert StepLog.objects.filter(group_session=gs, action="released").count() == 1


def console(gs, n, *, process="p1"):
    """What a server process's hub writes when it holds ``n`` experimenter sockets."""
    presence.record_presence(group_session=gs.pk, process=process, held={CONSOLE: n})


def test_an_open_console_confirms_the_start(lobby_experiment, django_user_model):
    staff = django_user_model.objects.create_user("lab", password="pw-123456", is_staff=True)
    gs = services.start_group_session(experiment=lobby_experiment, experimenter=staff)
    console(gs, 1)
    assert flowservices.console_open(gs.pk)
    assert Membership.objects.filter(group_session=gs).count() == 0  # a console is no participant
    arrive(gs)
    arrive(gs)
    timers.fire_due("test")
    assert GroupSession.objects.get(pk=gs.pk).phase == "waiting"
    assert Timer.objects.get(kind="lobby_start").data == {"waits_for": "experimenter"}
    snapshot = store.snapshot(gs.pk)
    assert snapshot["lobby"]["waiting_for"] == 0 and snapshot["lobby"]["placed"] == 2  # the console's prompt
    services.group_session_start(group_session=gs, by=staff)  # Start now
    assert StepLog.objects.get(group_session=gs, action="started").by == staff


def test_attached_but_no_console_open_starts_by_itself(lobby_experiment, django_user_model):
    staff = django_user_model.objects.create_user("lab", password="pw-123456", is_staff=True)
    gs = services.start_group_session(experiment=lobby_experiment, experimenter=staff)  # attached, page closed
    arrive(gs)
    arrive(gs)
    timers.fire_due("test")
    assert GroupSession.objects.get(pk=gs.pk).phase == "running"


@pytest.mark.parametrize("how", ["closed", "process died"])
def test_the_last_console_closing_starts_a_full_lobby(lobby_experiment, how):
    gs = services.start_group_session(experiment=lobby_experiment)
    console(gs, 2, process="p1")
    console(gs, 1, process="p2")
    arrive(gs)
    arrive(gs)
    timers.fire_due("test")
    console(gs, 0, process="p1")  # one console of two closed: still asking
    assert not Timer.objects.filter(kind="lobby_start", fired_ms__isnull=True).exists()
    if how == "closed":
        console(gs, 0, process="p2")
    else:  # its lease ran out: the sweeper takes its sockets off
        presence.sweep_processes(dead=["p2"])
    assert not flowservices.console_open(gs.pk)
    timers.fire_due("test")
    gs.refresh_from_db()
    assert gs.phase == "running"
    assert StepLog.objects.get(group_session=gs, action="started").data == {"by": "auto"}


def test_a_console_closing_before_the_lobby_is_full_arms_nothing(lobby_experiment):
    gs = services.start_group_session(experiment=lobby_experiment)
    console(gs, 1)
    arrive(gs)
    console(gs, 0)
    assert not Timer.objects.filter(kind="lobby_start").exists()
    arrive(gs)  # full now, no console: starts by itself
    timers.fire_due("test")
    assert GroupSession.objects.get(pk=gs.pk).phase == "running"


def test_not_placed_in_time_are_released_and_see_the_code(client, lobby_experiment):
    gs = services.start_group_session(experiment=lobby_experiment)
    page = client.get(f"/group/session/attach/participant/?experiment={lobby_experiment.pk}")
    assert page.status_code == 200 and b"groups of 2" in page.content
    joined = client.post("/group/session/attach/participant/", {"experiment": lobby_experiment.pk})
    assert joined.status_code == 302 and joined["Location"].startswith(f"/run/{lobby_experiment.pk}/start/?tc=")
    client.get(joined["Location"])
    session = Session.objects.get(experiment=lobby_experiment)
    assert Membership.objects.get(session=session).group_session_id == gs.pk
    fire_all_due()  # alone for a minute: the session never reached min_size
    assert Membership.objects.get(session=session).status == "released"
    page = client.get(f"/run/{lobby_experiment.pk}/")
    assert b"Thank you for waiting" in page.content and b"C1A2B3" in page.content


def test_the_door_says_when_no_session_is_open(client, lobby_experiment):
    response = client.post("/group/session/attach/participant/", {"experiment": lobby_experiment.pk})
    assert response.status_code == 409 and b"No group session is open" in response.content


def test_the_door_shows_how_many_more_and_the_estimated_wait(client, lobby_experiment):
    lobby_experiment.lobby = {**LOBBY, "min_size": 3, "max_size": 4}
    lobby_experiment.save()
    gs = services.start_group_session(experiment=lobby_experiment)
    page = client.get(f"/group/session/attach/participant/?experiment={lobby_experiment.pk}").content.decode()
    assert 'data-waiting-for="3"' in page and "waiting for 3 more." in page  # no estimate before two arrived
    arrive(gs)
    arrive(gs)
    version = services.load_state(gs)[0].version
    page = client.get(f"/group/session/attach/participant/?experiment={lobby_experiment.pk}").content.decode()
    assert 'data-waiting-for="1"' in page and "2 of 3 here: waiting for 1 more (about " in page
    assert services.load_state(gs)[0].version == version  # the door wrote nothing
