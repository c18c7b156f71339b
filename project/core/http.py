"""Django's ASGI handler, with each request's middleware and view run in ONE thread.

Django's own ``ASGIHandler`` runs the middleware chain in async mode: every
synchronous middleware (all of ours and Django's are) is entered through
``sync_to_async`` for its request half and again for its response half, so a
request crossed between the event loop and its thread about fifteen times before
the view ran. Under load each crossing waits for the loop and for the GIL: with
500 answers posted at once, those crossings were a large part of what one answer
cost (bench/submit.py; docs/performance.md).

``ThreadedASGIHandler`` keeps everything Django's handler does around a request
(reading the body into a spooled file, ``request_started``/``request_finished``,
disconnect handling, streaming responses) and replaces only the middleware-and-view
step by the synchronous chain (``BaseHandler.get_response``: the same middleware,
URL resolution and error handling that WSGI servers use), called once in the
request's thread. Async views still work: the synchronous chain runs them with
``async_to_sync``, as under WSGI.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse


class ThreadedASGIHandler(ASGIHandler):
    def __init__(self):
        super(ASGIHandler, self).__init__()  # BaseHandler: no async middleware chain
        self.load_middleware(is_async=False)

    async def run_get_response(self, request):
        # thread_sensitive: the request's own thread (ASGIHandler.__call__ opens a
        # ThreadSensitiveContext per request), where any later sync work of it runs too.
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):  # as ASGIHandler: the server chunks
            response.block_size = self.chunk_size
        return response


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
