"""A pytest helper: bots against the live test server (``tests/e2e/conftest.py``'s
``live_server_factory``), from a test that uses ``transactional_db``::

    from bots.testing import run_bots

    def test_demo(transactional_db, bots_server):
        report = run_bots(bots_server.url, "demo-colors", count=6, think=(0, 0.2))
        assert report["ok"], report

Returns the report (docs/bots.md). Set-up and the stored-answer check use the test
database, which the server shares.
"""

from __future__ import annotations

from bots.rehearsal import Plan, rehearse


def run_bots(url: str, experiment: str, count: int, **plan) -> dict:
    """Play ``experiment`` with ``count`` bots against ``url``; the report as a dict."""
    plan.setdefault("timeout", 120.0)
    plan.setdefault("seed", 7)
    return rehearse(Plan(experiment=experiment, count=count, url=url, **plan))
