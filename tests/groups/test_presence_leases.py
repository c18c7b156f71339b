"""Connections counted per server process (groups.presence, issue 14 cause 6): each
process's share of ``Membership.connections`` is kept in ``ProcessConnections`` in the
same write, so a dead process's share can be taken off and nothing else."""

from __future__ import annotations

import json

import pytest

from groups import presence, services
from groups.models import GroupSession, Membership, ProcessConnections

pytestmark = pytest.mark.django_db


def _connections(gs) -> dict[str, int]:
    return dict(Membership.objects.filter(group_session=gs).values_list("pseudonym", "connections"))


def _ledger(gs) -> dict[tuple[str, str], int]:
    rows = ProcessConnections.objects.filter(group_session=gs).values_list("pseudonym", "process", "count")
    return {(p, owner): n for p, owner, n in rows}


def _version(gs) -> int:
    return GroupSession.objects.get(pk=gs.pk).version


def test_counts_are_absolute_per_process_and_sum_up(gs, join):
    (_, m1), (_, m2) = join(), join()
    a, b = m1.pseudonym, m2.pseudonym
    presence.record_presence(group_session=gs, process="proc-a", held={a: 2, b: 1})
    presence.record_presence(group_session=gs, process="proc-b", held={a: 1})
    assert _connections(gs) == {a: 3, b: 1}
    assert _ledger(gs) == {(a, "proc-a"): 2, (b, "proc-a"): 1, (a, "proc-b"): 1}
    version = _version(gs)
    assert presence.record_presence(group_session=gs, process="proc-a", held={a: 2, b: 1}) is None  # a retry
    assert _version(gs) == version and _connections(gs) == {a: 3, b: 1}
    presence.record_presence(group_session=gs, process="proc-a", held={a: 0})
    assert _connections(gs) == {a: 1, b: 1}
    assert _ledger(gs) == {(b, "proc-a"): 1, (a, "proc-b"): 1}  # a row at zero is gone


def test_sweeping_a_dead_process_takes_off_its_share_only(gs, join, django_capture_on_commit_callbacks, monkeypatch):
    from realtime import frames, publish

    (_, m1), (_, m2) = join(), join()
    a, b = m1.pseudonym, m2.pseudonym
    presence.record_presence(group_session=gs, process="dead", held={a: 1, b: 2})
    presence.record_presence(group_session=gs, process="alive", held={a: 1})
    published = []
    monkeypatch.setattr(publish, "publish_text", lambda gs_id, body: published.append((gs_id, body)))
    with django_capture_on_commit_callbacks(execute=True):
        assert presence.sweep_processes(dead=["dead"]) == [gs.pk]
    _, console = frames.decode_console(published[-1][1])  # the console is told (after the pages)
    assert [p["connected"] for p in json.loads(console)["participants"]] == [True, False]
    assert _connections(gs) == {a: 1, b: 0}
    assert _ledger(gs) == {(a, "alive"): 1}
    assert presence.counting_processes() == {"alive"}
    version = _version(gs)
    assert presence.sweep_processes(dead=["dead"]) == []  # a second sweeper finds nothing left
    assert _version(gs) == version


def test_a_new_lease_id_takes_over_in_one_change(gs, join):
    """A process that lost its lease counts its sockets again under a new id, the old
    id's rows retired in the same change: the console never sees them drop."""
    (_, m1), (_, m2) = join(), join()
    a, b = m1.pseudonym, m2.pseudonym
    presence.record_presence(group_session=gs, process="old", held={a: 1, b: 1})
    version = _version(gs)
    assert presence.record_presence(group_session=gs, process="new", held={a: 1, b: 1}, retired=["old"]) is None
    assert _version(gs) == version and _connections(gs) == {a: 1, b: 1}
    assert _ledger(gs) == {(a, "new"): 1, (b, "new"): 1}


def test_after_a_sweep_of_a_live_process_its_next_write_restores_its_share(gs, join):
    """A process swept while alive (it stalled longer than its lease) writes absolute
    counts: its next write adds back what it holds, not a delta on top of nothing."""
    (_, m1), _ = join(), join()
    a = m1.pseudonym
    presence.record_presence(group_session=gs, process="slow", held={a: 2})
    presence.sweep_processes(dead=["slow"])
    assert _connections(gs)[a] == 0
    presence.record_presence(group_session=gs, process="slow", held={a: 1})
    assert _connections(gs)[a] == 1 and _ledger(gs) == {(a, "slow"): 1}


def test_a_kicked_participant_gains_no_connection_and_none_is_counted(gs, join, staff):
    (_, m1), (_, m2) = join(), join()
    a, b = m1.pseudonym, m2.pseudonym
    services.group_session_kick(group_session=gs, participant=b, by=staff)
    presence.record_presence(group_session=gs, process="p", held={a: 1, b: 1, "PNOBODY": 1})
    assert _connections(gs) == {a: 1, b: 0}
    assert _ledger(gs) == {(a, "p"): 1}
    presence.sweep_processes(dead=["p"])
    assert _connections(gs) == {a: 0, b: 0}
