"""A login without a usable ``next=`` lands on the editor (it was /accounts/profile/, a 404)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("next_url", ["", "https://elsewhere.example/", "//elsewhere.example/x"])
def test_login_without_a_safe_next_lands_on_the_editor(client, next_url):
    get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True)
    response = client.post("/editor/login/", {"username": "exp", "password": "pw-123456", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == "/editor/"
    assert client.get(response["Location"]).status_code == 200


def test_login_with_a_safe_next_goes_there(client):
    get_user_model().objects.create_user("exp", password="pw-123456", is_staff=True)
    data = {"username": "exp", "password": "pw-123456", "next": "/group/session/start/"}
    assert client.post("/editor/login/", data)["Location"] == "/group/session/start/"
