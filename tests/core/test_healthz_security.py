"""/healthz tells the public which part is down, never why: the reason goes to the log."""

from __future__ import annotations

import logging

import pytest

from project.core import views

pytestmark = pytest.mark.django_db

SECRET = 'connection to server at "db.internal" (10.1.2.3), port 5432 failed: password for user "lab_admin"'


def test_failing_check_names_only_the_error_type(client, monkeypatch, caplog):
    def broken():
        raise ConnectionError(SECRET)

    monkeypatch.setattr(views, "_check_database", broken)
    with caplog.at_level(logging.WARNING, logger="project.healthz"):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is False and body["database"]["error"] == "ConnectionError"
    assert "db.internal" not in response.content.decode() and "lab_admin" not in response.content.decode()
    assert "db.internal" in caplog.text  # operators still see why
