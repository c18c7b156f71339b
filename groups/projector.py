"""The projector view's parts: the join URL with the code filled in, and its QR code.

The QR code is drawn on the server by segno as inline SVG (no image request, no script),
sharp at any projector size."""

from __future__ import annotations

from urllib.parse import urlencode

import segno


def join_url(base: str, *, experiment_id: int, code: str | None = None) -> str:
    """The participant-code page for this experiment; with ``code``, the field is filled in."""
    query = {"experiment": experiment_id}
    if code:
        query["code"] = code
    return f"{base}?{urlencode(query)}"


def qr_svg(url: str) -> str:
    """``url`` as a QR code in inline SVG that scales with its box (no fixed size)."""
    qr = segno.make(url, error="m")
    svg = qr.svg_inline(scale=1, border=2, dark="#000", light="#fff", omitsize=True)
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code of the join link" ', 1)
