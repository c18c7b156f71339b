import pytest
from django.test import override_settings


@pytest.mark.django_db
def test_unknown_address_gets_the_styled_404(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content and b"bootstrap.min.css" in response.content


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_body_gets_a_clear_400_page(client):
    response = client.post("/group/session/attach/participant/", {"code": "x" * 5000})
    assert response.status_code == 400
    assert b"more data than it allows" in response.content
