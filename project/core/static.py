"""Serve collected static files and imported stimuli from the ASGI app with Starlette's
StaticFiles (range requests included, for audio and video), in every mode: no proxy
rule and no ``DEBUG`` needed.

Stimuli come from experimenters' zips and may be anything, ``page.html`` with a script
or an SVG with one included, served from our own origin next to our cookies. Every
stimulus response therefore carries ``Content-Security-Policy: sandbox`` (opened as a
page, it runs in an opaque origin: no cookies, no storage, no scripts) and
``X-Content-Type-Options: nosniff``, and every type but plain media and text (images
other than SVG, audio, video, fonts, plain text, CSV, JSON) is sent with
``Content-Disposition: attachment``: a browser saves it instead of showing it.
Loading a stimulus as a trial's image, audio or video is unchanged.
Only ``MEDIA_ROOT/stimuli/`` is served: exports, also under ``MEDIA_ROOT``, stay behind
their permission-checked download view.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles

#: Content types a stimulus may be shown as (everything else is a download).
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
                "audio/", "video/", "font/", "text/plain", "text/csv", "application/json")  # fmt: skip


def stimulus_headers(content_type: str) -> list[tuple[bytes, bytes]]:
    """The headers every stimulus response gets, given its content type."""
    headers = [(b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff")]
    kind = content_type.split(";", 1)[0].strip().lower()
    if not any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in INLINE_TYPES):
        headers.append((b"content-disposition", b"attachment"))
    return headers


class StaticMount:
    """Send ``prefix``-ed HTTP requests to StaticFiles, everything else to ``app``.
    ``headers(content_type)``, if given, adds headers to every response of the mount."""

    def __init__(self, app, *, prefix: str, directory: Path, headers=None):
        self.app = app
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.static = StaticFiles(directory=str(directory), check_dir=False)
        self.headers = headers

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            scope = dict(scope)
            scope["root_path"] = scope.get("root_path", "")
            scope["path"] = "/" + scope["path"][len(self.prefix) :]
            if self.headers is not None:
                send = self._with_headers(send)
            try:
                return await self.static(scope, receive, send)
            except HTTPException as exc:  # StaticFiles raises 404/405 for Starlette's handler, absent here
                response = PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)

    def _with_headers(self, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v.decode("latin1") for k, v in headers if k.lower() == b"content-type"), "")
                message = {**message, "headers": headers + self.headers(content_type)}
            await send(message)

        return send_with_headers


def stimuli_directory(media_root) -> Path:
    """Where imported stimuli live (``Stimulus.location``: ``upload_to="stimuli/"``)."""
    return Path(media_root) / "stimuli"
