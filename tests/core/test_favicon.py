"""/favicon.ico answers (browsers ask for it on every page without an icon link): a
permanent redirect to the icon among the static files, which exists."""

from pathlib import Path

from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_favicon_redirects_to_a_static_icon():
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/img/favicon.ico"
    icon = (ROOT / "static" / "img" / "favicon.ico").read_bytes()
    assert icon[:4] == b"\x00\x00\x01\x00" and b"PNG" in icon[:40]  # an ICO holding a PNG


def test_pages_link_the_icon(db):
    html = Client().get("/").content.decode()
    assert 'rel="icon" href="/static/img/favicon.svg"' in html
