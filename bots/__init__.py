"""Bots: scripted participants that play an experiment end to end through the real HTTP
and socket protocol, and the load rehearsal built on them (issue 19, docs/bots.md).

For a package's ``bots.py``: ``from bots import expect``.
"""

from bots.script import ExpectationFailed, expect

__all__ = ["ExpectationFailed", "expect"]
