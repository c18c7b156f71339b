"""Our pages' modest Content-Security-Policy (project/core/middleware.py)."""

from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_pages_forbid_framing_plugins_and_base_changes(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert policy == "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
    assert client.get("/editor/login/").headers["Content-Security-Policy"] == policy
    assert client.get("/no-such-page/").headers["Content-Security-Policy"] == policy


@override_settings(X_FRAME_OPTIONS="SAMEORIGIN")
def test_same_origin_framing_follows_x_frame_options(client):
    assert client.get("/").headers["Content-Security-Policy"].startswith("frame-ancestors 'self';")


@override_settings(CONTENT_SECURITY_POLICY="")
def test_an_empty_setting_turns_it_off(client):
    assert "Content-Security-Policy" not in client.get("/").headers


@override_settings(CONTENT_SECURITY_POLICY="default-src 'self'")
def test_the_setting_replaces_it(client):
    assert client.get("/").headers["Content-Security-Policy"] == "default-src 'self'"
