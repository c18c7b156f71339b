"""A browser tab's HTTP for a bot: one keep-alive HTTP/1.1 connection (TLS for https),
the cookies the server sets, the CSRF token a form page carries, and redirects followed
hop by hop as a browser follows them. Pure asyncio: no HTTP package is installed, and a
rehearsal holds hundreds of these in one process.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

TIMEOUT = 60.0
MAX_REDIRECTS = 10
PATIENCE = 60.0  # seconds a bot keeps trying to reach the server


@dataclass
class Response:
    status: int
    url: str  # the path of the request that gave this response
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def is_redirect(self) -> bool:
        return self.status in (301, 302, 303, 307, 308) and bool(self.location)


class Browser:
    """One bot's HTTP. ``base`` is the server's URL (``http://127.0.0.1:8000``)."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.cookies: dict[str, str] = {}
        self.reader = self.writer = None
        self.lock = asyncio.Lock()
        self.requests = 0
        self.retries = 0  # requests tried again because the server could not be reached
        self.patience = PATIENCE

    @property
    def ws_base(self) -> str:
        return self.base.replace("http", "ws", 1)

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post(self, path: str, fields: list[tuple[str, str]] | dict, referer: str = "") -> Response:
        """A form POST as a browser sends it: urlencoded, with the CSRF cookie's token, Origin, Referer."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": self.base,
            "Referer": self.base + (referer or path),
            "X-CSRFToken": self.cookies.get("csrftoken", ""),
        }
        return await self.request("POST", path, urlencode(fields).encode(), headers)

    async def follow(self, response: Response) -> Response:
        """Follow ``response``'s redirects (GET each hop), as a browser does."""
        for _ in range(MAX_REDIRECTS):
            if not response.is_redirect:
                return response
            response = await self.get(self.local(urljoin(response.url, response.location)))
        raise ConnectionError(f"more than {MAX_REDIRECTS} redirects from {response.url}")

    def local(self, url: str) -> str:
        """A path on this server from a URL or a path."""
        parts = urlsplit(url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> Response:
        """One request; while the server cannot be reached (a restart) it is tried again for up to
        ``patience`` seconds, as a person reloads. A repeated POST is safe: each visit's nonce
        makes the server store an answer once."""
        deadline, delay = time.monotonic() + self.patience, 0.5
        while True:
            try:
                return await self._request(method, path, body, headers)
            except (OSError, asyncio.IncompleteReadError):
                if time.monotonic() + delay > deadline:
                    raise
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _request(self, method: str, path: str, body: bytes, headers: dict | None) -> Response:
        async with self.lock:
            self.requests += 1
            for attempt in (0, 1):  # a keep-alive connection the server closed is opened again once
                fresh = self.writer is None
                if fresh:
                    await self._open()
                try:
                    return await asyncio.wait_for(self._exchange(method, path, body, headers or {}), TIMEOUT)
                except (ConnectionError, asyncio.IncompleteReadError):
                    self.close()
                    if fresh or attempt:
                        raise
                except TimeoutError:
                    self.close()
                    raise
        raise AssertionError("unreachable")

    async def _open(self) -> None:
        context = ssl.create_default_context() if self.tls else None
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=context, limit=2**22), TIMEOUT
        )

    async def _exchange(self, method: str, path: str, body: bytes, headers: dict) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(self.base).netloc}", "Connection: keep-alive",
                 "User-Agent: EnsembleBot/1.0"]  # fmt: skip
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        if self.cookies:
            lines.append("Cookie: " + self.cookie_header())
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status, got = await self._head()
        content = await self._body(status, got)
        if got.get("connection", "").lower() == "close":
            self.close()
        return Response(status, path, got, content)

    async def _head(self) -> tuple[int, dict]:
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        got: dict[str, str] = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip()
            if key == "set-cookie":
                name, _, rest = value.partition("=")
                cookie = rest.split(";", 1)[0]
                if "max-age=0" in value.lower() or cookie == '""':
                    self.cookies.pop(name.strip(), None)
                else:
                    self.cookies[name.strip()] = cookie
            elif key:
                got[key] = value
        return int(head[0].split()[1]), got

    async def _body(self, status: int, got: dict) -> bytes:
        if "content-length" in got:
            return await self.reader.readexactly(int(got["content-length"]))
        if got.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readuntil(b"\r\n")
            return b"".join(parts)
        if status in (204, 304) or 100 <= status < 200:
            return b""
        content = await self.reader.read()  # no length: the body ends with the connection
        self.close()
        return content
