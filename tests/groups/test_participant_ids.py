"""One id per participant everywhere: the id a participant has in a group session (the
console, the context, hooks) is the start of the pseudonym every export gives its run,
and unique in the group session."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from exports import pseudonyms
from exports.services import run_export
from groups import selectors, services
from runner.models import Ticket
from tests.factories import ExperimentFactory, SessionFactory

pytestmark = pytest.mark.django_db


def test_console_ids_are_prefixes_of_the_export_pseudonyms(tmp_path):
    experiment = ExperimentFactory(is_group=True)
    gs = services.start_group_session(experiment=experiment, size=3)
    ticket = Ticket.objects.get(pk=gs.ticket_id)
    runs = [SessionFactory(experiment=experiment, ticket=ticket) for _ in range(2)]
    runs.append(SessionFactory(experiment=experiment, ticket=ticket, subject=None))  # no subject yet
    ids = [services.attach_participant(session=s, ticket=ticket).pseudonym for s in runs]

    exported = pseudonyms.PseudonymMap(pseudonyms.scope_for(experiment))
    for run, shown in zip(runs, ids, strict=True):
        full = exported.get(run.subject_id, run.pk)
        assert len(shown) == services.DISPLAY_PSEUDONYM_LENGTH and full.startswith(shown)
    console = selectors.snapshot(gs.pk)
    assert sorted(p["id"] for p in console["participants"]) == sorted(ids)

    result = run_export(experiment=experiment, fmt="json", out=tmp_path / "x.zip")
    with zipfile.ZipFile(result.path) as archive:
        groups = json.load(io.BytesIO(archive.read("group_sessions.json")))
    members = [m["participant"] for g in groups for m in g["members"]]
    assert sorted(members) == sorted(exported.get(r.subject_id, r.pk) for r in runs)
    assert all(any(m.startswith(shown) for m in members) for shown in ids)


def test_a_taken_prefix_gets_a_longer_id():
    experiment = ExperimentFactory(is_group=True)
    run = SessionFactory(experiment=experiment)
    full = pseudonyms.pseudonym(pseudonyms.subject_key(run.subject_id, run.pk), pseudonyms.scope_for(experiment))
    assert services.participant_pseudonym(run, set()) == full[:7]
    assert services.participant_pseudonym(run, {full[:7]}) == full[:8]
    assert services.participant_pseudonym(run, {full[:7], full[:8]}) == full[:9]
