"""Email and Prolific-id lookup by HMAC (runner.personal)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from runner.personal import email_hmac, prolific_pid_hmac, subject_by_email, subject_by_prolific_pid
from tests.factories import SubjectFactory


@override_settings(PSEUDONYM_KEY="k1")
def test_hmac_is_normalised_and_keyed():
    assert email_hmac(" Ann@Example.org ") == email_hmac("ann@example.org")
    assert len(email_hmac("ann@example.org")) == 64
    assert email_hmac("") == "" and prolific_pid_hmac("  ") == ""
    assert email_hmac("x@y.z") != prolific_pid_hmac("x@y.z")
    under_k1 = email_hmac("ann@example.org")
    with override_settings(PSEUDONYM_KEY="k2"):
        assert email_hmac("ann@example.org") != under_k1


@pytest.mark.django_db
def test_subject_by_email_and_prolific_pid():
    ann = SubjectFactory(
        email="ann@example.org",
        email_hmac=email_hmac("ann@example.org"),
        prolific_pid="5f3a",
        prolific_pid_hmac=prolific_pid_hmac("5f3a"),
    )
    SubjectFactory(email="bob@example.org", email_hmac=email_hmac("bob@example.org"))
    assert subject_by_email("ANN@example.org ") == ann
    assert subject_by_email("nobody@example.org") is None
    assert subject_by_email("") is None
    assert subject_by_prolific_pid("5f3a") == ann
    assert subject_by_prolific_pid("other") is None
