"""A keep-alive HTTP/1.1 connection per benchmark participant, as a browser tab keeps one.

``KeepAlive(port)`` sends requests one after another on one TCP connection (opened
again when the server closes it), keeps the cookies the server sets, and reads
``Content-Length`` or chunked bodies. No redirects are followed: the callers follow
them as a browser would, so that each hop is timed. Also the form parsing the
benchmarks share (hidden inputs, a named hidden field's value).
"""

from __future__ import annotations

import asyncio
import html
import re

INPUT = re.compile(r"<input\b[^>]*>", re.I)
ATTR = re.compile(r'([\w-]+)\s*=\s*"([^"]*)"')


class Response:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class KeepAlive:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self.cookies: dict[str, str] = {}
        self.reader = self.writer = None
        self.opened = 0  # TCP connections opened (1 if the server kept it alive throughout)
        self.lock = asyncio.Lock()  # one request at a time on the connection

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> Response:
        """One request; a connection the server closed while idle is opened again once."""
        async with self.lock:
            return await self._request(method, path, body, headers)

    async def _request(self, method: str, path: str, body: bytes, headers: dict | None) -> Response:
        for attempt in (0, 1):
            fresh = self.writer is None
            if fresh:
                await self._open()
            try:
                return await self._exchange(method, path, body, headers or {})
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, path: str, body: bytes, headers: dict) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Connection: keep-alive"]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        got: dict[str, str] = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip()
            if not key:
                continue
            if key == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            got[key] = value
        if "content-length" in got:
            content = await self.reader.readexactly(int(got["content-length"]))
        elif got.get("transfer-encoding", "").lower() == "chunked":
            content = await self._chunks()
        elif status in (204, 304) or 100 <= status < 200:
            content = b""
        else:  # no length: the body ends with the connection
            content = await self.reader.read()
            self.close()
        if got.get("connection", "").lower() == "close":
            self.close()
        return Response(status, got, content)

    async def _chunks(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def form_fields(page: str) -> tuple[dict[str, str], list[str]]:
    """The named hidden inputs of a page (CSRF token, step field, ...) with their values,
    and the names of its other inputs (the questions)."""
    hidden, others = {}, []
    for tag in INPUT.findall(page):
        attrs = {k.lower(): html.unescape(v) for k, v in ATTR.findall(tag)}
        if not attrs.get("name"):
            continue
        if attrs.get("type", "text").lower() == "hidden":
            hidden[attrs["name"]] = attrs.get("value", "")
        else:
            others.append(attrs["name"])
    return hidden, others
