"""URLs for tests/core/test_http_handler.py: sync, async and streaming views, and views
that tell which thread served them."""

import threading
import time

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

#: What the views saw, by name (the tests read and clear it).
SEEN: dict = {}


async def async_view(request):
    return HttpResponse("async ok")


async def _parts():
    for i in range(3):
        yield f"part {i}\n"


def streaming_view(request):
    return StreamingHttpResponse(_parts())


def sync_view(request):
    return HttpResponse(request.method)


def thread_view(request):
    return HttpResponse(threading.current_thread().name)  # a thread started anew has a new name


def _sync_parts(view_thread):
    for i in range(3):
        SEEN.setdefault("chunk_threads", []).append(threading.get_ident() == view_thread)
        yield f"chunk {i}\n"


def sync_stream_view(request):
    return StreamingHttpResponse(_sync_parts(threading.get_ident()))


def slow_view(request):
    """Takes ``?s=`` seconds; records that it finished and that its response was closed."""
    time.sleep(float(request.GET.get("s", "0.3")))
    SEEN["slow_finished"] = True
    response = HttpResponse("slow")
    response._resource_closers.append(lambda: SEEN.__setitem__("slow_closed", True))
    return response


urlpatterns = [
    path("thread/", thread_view),
    path("sync-stream/", sync_stream_view),
    path("slow/", slow_view),
    path("async/", async_view),
    path("stream/", streaming_view),
    path("sync/", sync_view),
]
