"""The test database's flush is tried again when PostgreSQL ends it as a deadlock's victim
(tests/conftest.py): only for a deadlock, and not forever."""

import pytest
from django.db import OperationalError

from tests.conftest import retried_on_deadlock


def failing(errors):
    calls = []

    def call():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "flushed"

    return call, calls


def test_a_deadlock_victim_is_tried_again_until_it_goes_through():
    call, calls = failing([OperationalError("deadlock detected\nDETAIL: ..."), OperationalError("deadlock detected")])
    assert retried_on_deadlock(call, pause=0) == "flushed" and len(calls) == 3


def test_another_error_or_too_many_deadlocks_is_raised():
    call, calls = failing([OperationalError("relation does not exist")])
    with pytest.raises(OperationalError, match="does not exist"):
        retried_on_deadlock(call, pause=0)
    assert len(calls) == 1
    call, calls = failing([OperationalError("deadlock detected")] * 3)
    with pytest.raises(OperationalError, match="deadlock"):
        retried_on_deadlock(call, tries=3, pause=0)
    assert len(calls) == 3
