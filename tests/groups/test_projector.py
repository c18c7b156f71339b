"""The projector view's server side: who may see it, what it shows, and its QR code."""

from __future__ import annotations

import io

import pytest
import segno
from django.contrib.auth import get_user_model

from groups import projector, services
from tests.factories import ExperimentFactory

pytestmark = pytest.mark.django_db


def test_qr_code_holds_the_join_link():
    import zxingcpp
    from PIL import Image

    url = projector.join_url("https://lab.example.org/group/session/attach/participant/", experiment_id=7, code="K7PX")
    assert url.endswith("/participant/?experiment=7&code=K7PX")
    svg = projector.qr_svg(url)
    assert svg.startswith("<svg ") and 'aria-label="QR code of the join link"' in svg and "width=" not in svg
    png = io.BytesIO()
    segno.make(url, error="m").save(png, kind="png", scale=8, border=2)  # the same code, as pixels
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.getvalue())))] == [url]


def test_projector_needs_an_attached_experimenter(client):
    gs = services.start_group_session(experiment=ExperimentFactory(is_group=True), size=2)
    url = f"/group/session/projector/{gs.pk}/"
    assert client.get(url).status_code == 302  # login first
    user = get_user_model().objects.create_user("x", password="pw", is_staff=True)
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].endswith("/group/session/attach/experimenter/")
    services.attach_experimenter(group_session=gs, user=user)
    page = client.get(url).content.decode()
    assert gs.participant_code in page and gs.experimenter_code not in page
    assert f"experiment={gs.experiment_id}&amp;code={gs.participant_code}" in page and "<svg " in page
    assert client.get("/group/session/projector/999999/").status_code == 404
