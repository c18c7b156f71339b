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

import asyncio
from concurrent.futures import ThreadPoolExecutor

from bots.rehearsal import Plan, rehearse


def run_bots(url: str, experiment: str, count: int, **plan) -> dict:
    """Play ``experiment`` with ``count`` bots against ``url``; the report as a dict. The
    bots' event loop runs in a thread of its own when this one already runs a loop
    (Playwright's sync API, used by the browser tests, leaves one in the main thread)."""
    plan.setdefault("timeout", 120.0)
    plan.setdefault("seed", 7)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return rehearse(Plan(experiment=experiment, count=count, url=url, **plan))
    with ThreadPoolExecutor(1, thread_name_prefix="bots") as thread:
        return thread.submit(rehearse, Plan(experiment=experiment, count=count, url=url, **plan)).result()
