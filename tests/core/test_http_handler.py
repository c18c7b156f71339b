"""The ASGI handler that serves Django (project.core.http.ThreadedASGIHandler): each
request's Django part runs in one call on a kept thread, and everything Django's own
ASGI handler does around it still happens: middleware, async and streaming views,
CSRF refusals, Django's 404 page, request_started/request_finished, disconnects."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import HttpCommunicator
from django.test import override_settings

from project.core.http import ThreadedASGIHandler

pytestmark = pytest.mark.asyncio


async def _get(app, method: str, path: str, body: bytes = b"", headers=None) -> dict:
    """One request; the response's status, headers and whole body (streamed or not)."""
    headers = [(b"host", b"testserver"), *(headers or [])]
    communicator = HttpCommunicator(app, method, path, body=body, headers=headers)
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(10)
    assert start["type"] == "http.response.start"
    content = b""
    while True:
        chunk = await communicator.receive_output(10)
        content += chunk.get("body", b"")
        if not chunk.get("more_body", False):
            break
    await communicator.wait(10)
    return {"status": start["status"], "headers": start.get("headers", []), "body": content}


@override_settings(ROOT_URLCONF="tests.core.http_urls")
async def test_sync_async_and_streaming_views_are_served_through_the_middleware():
    app = ThreadedASGIHandler()
    sync = await _get(app, "GET", "/sync/")
    assert (sync["status"], sync["body"]) == (200, b"GET")
    headers = dict(sync["headers"])
    assert headers[b"X-Frame-Options"] == b"DENY"  # the middleware ran around the view
    assert headers[b"X-Content-Type-Options"] == b"nosniff"
    assert (await _get(app, "GET", "/async/"))["body"] == b"async ok"
    assert (await _get(app, "GET", "/stream/"))["body"] == b"part 0\npart 1\npart 2\n"


@override_settings(ROOT_URLCONF="tests.core.http_urls")
async def test_a_post_without_csrf_token_is_refused_before_the_view():
    app = ThreadedASGIHandler()
    response = await _get(app, "POST", "/sync/", body=b"a=1",
                          headers=[(b"content-type", b"application/x-www-form-urlencoded")])  # fmt: skip
    assert response["status"] == 403


@pytest.mark.django_db(transaction=True)
async def test_an_unknown_address_gets_the_sites_styled_404():
    response = await _get(ThreadedASGIHandler(), "GET", "/no-such-page/")
    assert response["status"] == 404
    assert b"<html" in response["body"].lower()


@pytest.mark.django_db(transaction=True)
async def test_after_warm_up_a_request_fills_no_url_tables(monkeypatch):
    """Django fills its URL tables in whichever request threads get there first, all at
    once (500 GETs on a fresh server took 20-31 s); warm_up fills them at start-up."""
    from asgiref.sync import sync_to_async
    from django.urls import clear_url_caches
    from django.urls.resolvers import URLResolver, get_ns_resolver

    from project.core.http import warm_up

    clear_url_caches()
    get_ns_resolver.cache_clear()
    assert await sync_to_async(warm_up)() > 50  # the templates, compiled
    filled = []
    populate = URLResolver._populate
    monkeypatch.setattr(URLResolver, "_populate", lambda self: filled.append(self) or populate(self))
    home = await _get(ThreadedASGIHandler(), "GET", "/")  # {% url 'admin:index' %} and others
    assert home["status"] == 200 and b"Experimenter login" in home["body"]
    assert filled == []


async def test_a_missing_static_file_is_a_404_not_a_server_error(tmp_path):
    from project.core.static import StaticMount

    (tmp_path / "site.css").write_text("body {}")
    app = StaticMount(ThreadedASGIHandler(), prefix="/static/", directory=tmp_path)
    assert (await _get(app, "GET", "/static/site.css"))["body"] == b"body {}"
    missing = await _get(app, "GET", "/static/nope.css")
    assert (missing["status"], missing["body"]) == (404, b"Not Found")
    assert (await _get(app, "POST", "/static/site.css"))["status"] == 405


@override_settings(ROOT_URLCONF="tests.core.http_urls")
async def test_requests_reuse_kept_threads_and_return_their_database_connection():
    """No thread is started per request (500 at once spent as much on starting and
    joining threads as on the requests), and each request ends with Django's
    request_finished: its database connection closed (back to the pool)."""
    from django.core import signals

    finished = []
    receiver = lambda **kwargs: finished.append(kwargs["sender"])  # noqa: E731
    signals.request_finished.connect(receiver)
    try:
        app = ThreadedASGIHandler()
        threads = {(await _get(app, "GET", "/thread/"))["body"] for _ in range(20)}
    finally:
        signals.request_finished.disconnect(receiver)
    assert len(finished) == 20 and set(finished) == {ThreadedASGIHandler}
    assert len(threads) < 20  # one request at a time: the same few kept threads


@override_settings(ROOT_URLCONF="tests.core.http_urls")
async def test_more_requests_at_once_than_threads_are_all_served(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from project.core import http

    monkeypatch.setattr(http, "_executor", ThreadPoolExecutor(max_workers=3))
    app = ThreadedASGIHandler()
    got = await asyncio.gather(*(_get(app, "GET", "/slow/?s=0.05") for _ in range(12)))
    assert [r["status"] for r in got] == [200] * 12
    assert len({r["body"] for r in got}) == 1


@override_settings(ROOT_URLCONF="tests.core.http_urls")
async def test_sync_streaming_content_is_read_in_the_thread_that_made_it():
    from tests.core.http_urls import SEEN

    SEEN.clear()
    response = await _get(ThreadedASGIHandler(), "GET", "/sync-stream/")
    assert response["body"] == b"chunk 0\nchunk 1\nchunk 2\n"
    assert SEEN["chunk_threads"] == [True, True, True]


@override_settings(ROOT_URLCONF="tests.core.http_urls")
async def test_a_client_that_leaves_mid_view_gets_nothing_and_the_view_still_ends_cleanly():
    from tests.core.http_urls import SEEN

    SEEN.clear()
    communicator = HttpCommunicator(ThreadedASGIHandler(), "GET", "/slow/?s=0.3", headers=[(b"host", b"testserver")])
    await communicator.send_input({"type": "http.request", "body": b""})
    await asyncio.sleep(0.05)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(5)  # the application returned
    assert await communicator.receive_nothing(0.2)
    assert SEEN == {"slow_finished": True, "slow_closed": True}
