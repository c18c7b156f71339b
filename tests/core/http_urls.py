"""URLs for tests/core/test_http_handler.py: an async view and a streaming one."""

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path


async def async_view(request):
    return HttpResponse("async ok")


async def _parts():
    for i in range(3):
        yield f"part {i}\n"


def streaming_view(request):
    return StreamingHttpResponse(_parts())


def sync_view(request):
    return HttpResponse(request.method)


urlpatterns = [
    path("async/", async_view),
    path("stream/", streaming_view),
    path("sync/", sync_view),
]
