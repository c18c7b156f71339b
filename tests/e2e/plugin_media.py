"""Small media files for the plugin browser tests, made in the test (nothing downloaded).

``media_files(browser)`` returns ``{name: (content_type, bytes)}`` for the names the
cases use under ``/plugin-media/``: a 0.4 s WAV tone (Python's ``wave``), two 32x32 PNGs
(``zlib``), a 0.6 s WebM clip recorded from a canvas by Chromium's own MediaRecorder
(there is no ffmpeg on the test machines), and an HTML page for external-html.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
import zlib

EXTERNAL_PAGE = b"<p id='ext-text'>An external page.</p><button id='ext-go'>Go on</button>"


def wav_tone(seconds: float = 0.4, rate: int = 8000, freq: float = 440.0) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * n / rate))) for n in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def png_square(rgb: tuple[int, int, int], size: int = 32) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    pixels = zlib.compress(row * size)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


RECORD_WEBM = """async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 48;
  const ctx = canvas.getContext("2d");
  const stream = canvas.captureStream(25);
  const recorder = new MediaRecorder(stream, {mimeType: "video/webm;codecs=vp8"});
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const done = new Promise((resolve) => { recorder.onstop = resolve; });
  let frame = 0;
  const timer = setInterval(() => { ctx.fillStyle = frame++ % 2 ? "#36c" : "#c63"; ctx.fillRect(0, 0, 64, 48); }, 40);
  recorder.start();
  await new Promise((resolve) => setTimeout(resolve, 600));
  recorder.stop();
  await done;
  clearInterval(timer);
  const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}"""


def webm_clip(browser) -> bytes:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto("about:blank")
        return base64.b64decode(page.evaluate(RECORD_WEBM))
    finally:
        context.close()


def media_files(browser) -> dict[str, tuple[str, bytes]]:
    return {
        "tone.wav": ("audio/wav", wav_tone()),
        "a.png": ("image/png", png_square((200, 40, 40))),
        "b.png": ("image/png", png_square((40, 40, 200))),
        "clip.webm": ("video/webm", webm_clip(browser)),
        "page.html": ("text/html", EXTERNAL_PAGE),
    }
