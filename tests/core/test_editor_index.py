import pytest
from django.contrib.auth import get_user_model


@pytest.mark.django_db
def test_editor_index_links_the_tools(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.org", "pw-123456789")
    client.force_login(user)
    page = client.get("/editor/").content.decode()
    for url in (
        "/group/session/start/",
        "/group/session/attach/experimenter/",
        "/editor/exports/",
        "/run/editor/stimuli/import/",
        "/healthz",
    ):
        assert f'href="{url}"' in page
    for url in ("/group/session/start/", "/editor/exports/", "/run/editor/stimuli/import/"):
        assert client.get(url).status_code == 200, url
