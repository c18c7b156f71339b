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


def get_http_application() -> ThreadedASGIHandler:
    """``django.core.asgi.get_asgi_application`` with the threaded handler."""
    import django

    django.setup(set_prefix=False)
    return ThreadedASGIHandler()
