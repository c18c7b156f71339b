"""Django's ASGI handler, with each request's Django part run in ONE hop to a kept thread.

Django's own ``ASGIHandler`` runs the middleware chain in async mode: every
synchronous middleware (all of ours and Django's are) is entered through
``sync_to_async`` for its request half and again for its response half, so a
request crossed between the event loop and its thread about fifteen times before
the view ran. Even with the chain run synchronously, Django's handler still crosses
three times per request (``request_started``, the view, ``response.close()``), and
``ThreadSensitiveContext`` starts a new thread for every request and joins it at the
end. With 500 requests at once, those threads and crossings cost about as much as
the requests' own work (bench/submit.py: the home page's p99 for 500 GETs at once
was 1.07-1.40 s with them, 0.54-0.67 s without; docs/performance.md).

``ThreadedASGIHandler`` keeps what Django's handler does around a request (the body
read into a spooled file, refused with 413 once over ``MAX_REQUEST_BYTES``;
``request_started``/``request_finished``, the same middleware, URL resolution and
error handling as under WSGI, disconnects, streaming and async views) and runs the
whole Django part of a request in one call on a pool of kept threads
(:func:`request_threads`, ``HTTP_THREADS``), as a threaded WSGI server does:
``request_started``, the request, the chain and view, ``close()`` and
``request_finished``, then the loop sends the bytes. Sync streaming content is
iterated in that same thread (a server-side cursor stays on its connection) and its
chunks sent as they come; async content is iterated on the loop, as Django's handler
does. Async views run through ``async_to_sync``, as under WSGI.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def request_threads() -> ThreadPoolExecutor:
    """The threads that serve requests, kept and reused (as a threaded WSGI server's):
    at most ``HTTP_THREADS`` requests run their Django part at once, the others wait
    their turn on the event loop."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.HTTP_THREADS, thread_name_prefix="http")
        return _executor


class ThreadedASGIHandler(ASGIHandler):
    def __init__(self):
        super(ASGIHandler, self).__init__()  # BaseHandler: no async middleware chain
        self.load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        if _declared_length(scope) > settings.MAX_REQUEST_BYTES:
            return await _send_too_large(send)  # before a byte of the body is read
        try:
            body_file = await self.read_body(_limited(receive))
        except RequestAborted:
            return
        except BodyTooLarge:
            return await _send_too_large(send)
        work = asyncio.ensure_future(in_request_thread(self._serve, scope, body_file, send))
        work.add_done_callback(lambda _: body_file.close())  # once the thread is done with it
        disconnect = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([work, disconnect], return_when=asyncio.FIRST_COMPLETED)
            if not work.done():  # the client left: its thread still finishes (and closes) the response
                send = None
            outcome = await asyncio.shield(work)
        finally:
            disconnect.cancel()
            if disconnect.done() and not disconnect.cancelled():
                disconnect.exception()  # RequestAborted: read, so asyncio does not log it as lost
        response = outcome
        if response is None:  # sent already (sync streaming content)
            return
        if send is not None:  # Django's own: bytes, or async content iterated on the loop
            await self.send_response(response, send)
        if response.streaming:
            await in_request_thread(response.close)

    def _serve(self, scope, body_file, send):
        """The request's whole Django part, in one thread: ``request_started``, the
        request, middleware and view, then (but for async streaming content, sent by the
        loop) ``close()`` and ``request_finished``. Sync streaming content is iterated here
        and its chunks sent as they come, so its iterator stays in the thread that made
        it (a server-side cursor does)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):  # as ASGIHandler: the server chunks
                response.block_size = self.chunk_size
        if response.streaming and not response.is_async:
            try:
                send = async_to_sync(send)
                send({"type": "http.response.start", "status": response.status_code, "headers": _headers(response)})
                for part in response:
                    for chunk, _ in self.chunk_bytes(part):
                        send({"type": "http.response.body", "body": chunk, "more_body": True})
                send({"type": "http.response.body"})
            finally:
                response.close()
            return None
        if not response.streaming:
            response.close()
        return response


class BodyTooLarge(Exception):
    """The body passed ``MAX_REQUEST_BYTES`` while it was read."""


def _declared_length(scope) -> int:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else 0  # a malformed length: the server's to refuse
    return 0


def _limited(receive):
    """``receive`` that raises ``BodyTooLarge`` once the body passes ``MAX_REQUEST_BYTES``
    (a chunked body has no length to check first), so no more of it is spooled."""
    received = 0

    async def limited_receive():
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > settings.MAX_REQUEST_BYTES:
            raise BodyTooLarge
        return message

    return limited_receive


async def _send_too_large(send) -> None:
    from project.core.bodies import too_large_page

    body = too_large_page()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def in_request_thread(func, *args):
    """``func(*args)`` in one of the request threads (asgiref's ``sync_to_async``: the
    context goes with it, and ``async_to_sync`` in it runs on this loop)."""
    return await sync_to_async(func, thread_sensitive=False, executor=request_threads())(*args)


def _headers(response) -> list:
    """The response's headers and cookies as ASGI wants them (as ``ASGIHandler.send_response``
    builds them, which sync streaming content, sent from the request's thread, cannot use)."""
    headers = []
    for header, value in response.items():
        headers.append((header.encode("ascii") if isinstance(header, str) else bytes(header),
                        value.encode("latin1") if isinstance(value, str) else bytes(value)))  # fmt: skip
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


def warm_up() -> int:
    """Import, compile and fill, before the first request, what Django otherwise builds
    lazily on first use in whichever request threads get there at once: the URLconf
    with every view module and its reverse tables, the template tag libraries and the
    templates. Without it, 500 GETs of the home page on a fresh server took 20-31 s
    (every thread filling the URL tables for ``{% url %}``, or waiting on the import
    lock), against 1.2-2 s once warm. Returns how many templates were compiled."""
    from pathlib import Path

    from django.template import engines
    from django.template.loader import get_template
    from django.urls import get_resolver

    _populate(get_resolver())
    compiled = 0
    for engine in engines.all():
        engine.engine.template_libraries  # noqa: B018 - imports the template tag modules
        for folder in engine.template_dirs:
            for path in sorted(Path(folder).rglob("*.html")):
                try:  # all of them, the admin's too: about 100 in 0.15 s
                    get_template(path.relative_to(folder).as_posix())
                except Exception:  # noqa: BLE001 - a broken template fails on its own request, with its page
                    continue
                compiled += 1
    return compiled


def _populate(resolver, namespace: str = "") -> None:
    """Fill ``resolver``'s reverse lookup tables, and those of every namespace under it,
    for the default language. Django fills them on the first ``reverse()`` or ``{% url %}``
    (for a namespaced name, in a resolver of its own that ``get_ns_resolver`` caches), in
    every thread that gets there before the first one finishes: 500 threads did the same
    work at once, under the GIL, for 20-30 s."""
    from django.urls import NoReverseMatch, reverse

    resolver.url_patterns  # noqa: B018 - imports every URL module and view
    resolver.reverse_dict  # noqa: B018 - populates the tables (and the namespaces' list)
    for name, (_prefix, sub) in resolver.namespace_dict.items():
        path = f"{namespace}{name}:"
        _populate(sub, path)
        view = next((key for key in sub.reverse_dict if isinstance(key, str)), None)
        if view is not None:
            try:  # builds and fills the namespace's cached resolver; arguments do not matter
                reverse(path + view)
            except NoReverseMatch:
                pass


def get_http_application() -> ThreadedASGIHandler:
    """``django.core.asgi.get_asgi_application`` with the threaded handler, warmed up."""
    import django

    django.setup(set_prefix=False)
    handler = ThreadedASGIHandler()
    warm_up()
    return handler
