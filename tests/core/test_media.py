"""Stimuli (issue 14 cause 5): served by the app in every mode (DEBUG off here, as in
production), with range requests, sandboxed so that nothing in them runs with our
cookies; the rest of MEDIA_ROOT (exports) is never served."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from project.core.static import stimulus_headers
from tests.core.serving import live_server

PAGE = b"<html><script>document.title = document.cookie</script></html>"
AUDIO = bytes(range(256)) * 40


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("media")
    media = tmp / "media"
    (media / "stimuli").mkdir(parents=True)
    (media / "stimuli" / "page.html").write_bytes(PAGE)
    (media / "stimuli" / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (media / "stimuli" / "drawing.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>")
    (media / "stimuli" / "clip.mp3").write_bytes(AUDIO)
    (media / "exports" / "7-0123456789abcdef").mkdir(parents=True)
    (media / "exports" / "7-0123456789abcdef" / "data.zip").write_bytes(b"PK secret data")
    with live_server(tmp, MEDIA_ROOT=str(media), DEBUG="0") as running:
        yield running


def _fetch(server, path: str, **headers):
    request = urllib.request.Request(f"http://127.0.0.1:{server['port']}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_images_are_served_with_debug_off_sandboxed(server):
    status, headers, body = _fetch(server, "/media/stimuli/pic.png")
    assert status == 200 and body.startswith(b"\x89PNG")
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Security-Policy"] == "sandbox"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Disposition" not in headers  # shown, as a trial's image


def test_html_and_svg_stimuli_are_downloads_in_a_sandbox(server):
    for name in ("page.html", "drawing.svg"):
        status, headers, _body = _fetch(server, f"/media/stimuli/{name}")
        assert status == 200
        assert headers["Content-Disposition"] == "attachment"
        assert headers["Content-Security-Policy"] == "sandbox"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_audio_is_served_in_ranges(server):
    status, headers, body = _fetch(server, "/media/stimuli/clip.mp3", Range="bytes=100-199")
    assert status == 206 and body == AUDIO[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(AUDIO)}"
    assert headers["Content-Type"] == "audio/mpeg" and "Content-Disposition" not in headers
    assert _fetch(server, "/media/stimuli/clip.mp3")[2] == AUDIO


def test_exports_and_other_media_are_never_served(server):
    export = "exports/7-0123456789abcdef/data.zip"
    for path in (f"/media/{export}", f"/media/stimuli/../{export}", f"/media/stimuli/%2e%2e/{export}",
                 "/media/stimuli/", "/media/"):  # fmt: skip
        status, _headers, body = _fetch(server, path)
        assert status == 404, path
        assert b"secret data" not in body


@pytest.mark.parametrize(
    ("content_type", "attachment"),
    [("image/png", False), ("image/jpeg", False), ("audio/wav", False), ("video/mp4", False),
     ("text/plain; charset=utf-8", False), ("application/json", False), ("text/html; charset=utf-8", True),
     ("image/svg+xml", True), ("application/xml", True), ("text/javascript", True), ("application/pdf", True),
     ("application/octet-stream", True), ("", True)],
)  # fmt: skip
def test_only_plain_media_and_text_are_shown_inline(content_type, attachment):
    headers = dict(stimulus_headers(content_type))
    assert (headers.get(b"content-disposition") == b"attachment") is attachment
    assert headers[b"content-security-policy"] == b"sandbox"
