"""Running test code in threads of its own, as concurrent requests run."""

from __future__ import annotations

import threading

from django.db import connection


def in_threads(calls, *, timeout: float = 30) -> None:
    """Run each of ``calls`` (no arguments) in its own thread, each with its own database
    connection, closed when it ends; wait for all and fail if one is still running."""

    def run(call):
        try:
            call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread was left running"
