"""CSRF tokens from one read of the random source (project.core.csrf): Django's own
middleware accepts them, they carry the cookie's secret, a page that renders
``{% csrf_token %}`` gets one, and making one reads the random source once, where
Django's ``get_token`` reads it once per character."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.http import HttpResponse
from django.middleware.csrf import (
    CSRF_ALLOWED_CHARS,
    CSRF_TOKEN_LENGTH,
    CsrfViewMiddleware,
    _unmask_cipher_token,
)
from django.middleware.csrf import get_token as django_get_token
from django.template import engines
from django.test import RequestFactory

from project.core import csrf

SECRET = "A" * 16 + "z9" * 8  # a cookie's secret: 32 characters of the alphabet


def _view(request):
    return HttpResponse("ok")


def _post(token: str, secret: str = SECRET):
    request = RequestFactory().post("/", {"csrfmiddlewaretoken": token})
    request.COOKIES["csrftoken"] = secret
    return request


def _accepted(request) -> bool:
    middleware = CsrfViewMiddleware(_view)
    middleware.process_request(request)
    return middleware.process_view(request, _view, (), {}) is None


def _get_with_cookie():
    request = RequestFactory().get("/")
    request.COOKIES["csrftoken"] = SECRET
    CsrfViewMiddleware(_view).process_request(request)  # puts the cookie's secret in META
    return request


def test_the_token_is_accepted_by_djangos_middleware_and_a_changed_one_is_not():
    token = csrf.get_token(_get_with_cookie())
    assert len(token) == CSRF_TOKEN_LENGTH and set(token) <= set(CSRF_ALLOWED_CHARS)
    assert _unmask_cipher_token(token) == SECRET
    assert _accepted(_post(token))
    changed = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert not _accepted(_post(changed))
    assert not _accepted(_post(token, secret="B" * 32))  # another browser's cookie


def test_each_token_has_a_new_mask_and_the_cookie_is_sent_again():
    request = _get_with_cookie()
    first, second = csrf.get_token(request), csrf.get_token(request)
    assert first != second and first[:32] != second[:32]
    assert _unmask_cipher_token(first) == _unmask_cipher_token(second) == SECRET
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"] is True


def test_without_a_cookie_a_new_secret_is_made_and_set():
    request = RequestFactory().get("/")
    token = csrf.get_token(request)
    secret = request.META["CSRF_COOKIE"]
    assert len(secret) == 32 and set(secret) <= set(CSRF_ALLOWED_CHARS)
    assert _unmask_cipher_token(token) == secret
    assert request.META["CSRF_COOKIE_NEEDS_UPDATE"] is True
    response = CsrfViewMiddleware(_view).process_response(request, HttpResponse())
    assert response.cookies["csrftoken"].value == secret
    assert _accepted(_post(token, secret=secret))


@pytest.fixture
def reads(monkeypatch):
    """How many times the system's random source is read (``secrets`` and ``random.SystemRandom``
    both read it through ``random._urandom``)."""
    count = Counter()
    real = random._urandom

    def counted(n):
        count["reads"] += 1
        return real(n)

    monkeypatch.setattr(random, "_urandom", counted)
    return count


def test_one_read_of_the_random_source_makes_a_token_where_djangos_makes_32(reads):
    csrf.get_token(_get_with_cookie())
    ours = reads["reads"]
    reads.clear()
    django_get_token(_get_with_cookie())
    assert ours == 1
    assert reads["reads"] >= 32  # why this module exists: each read releases the GIL


def test_bytes_past_the_alphabets_last_whole_multiple_are_dropped(monkeypatch):
    """248 = 4 x 62: the bytes 248-255 would make the first 8 characters likelier."""
    draws = iter([bytes([248, 255, 0, 61, 62, 247] * 11)[:64]])
    monkeypatch.setattr(csrf.secrets, "token_bytes", lambda n: next(draws))
    drawn = csrf.random_string(4)
    assert drawn == "".join(CSRF_ALLOWED_CHARS[i] for i in (0, 61, 0, 247 % 62))


def test_every_character_is_drawn_about_as_often():
    counts = Counter(csrf.random_string(62 * 200))
    assert set(counts) == set(CSRF_ALLOWED_CHARS)
    assert max(counts.values()) < 2.2 * min(counts.values())  # 200 each expected


def test_a_template_with_csrf_token_gets_ours(reads):
    request = _get_with_cookie()
    page = engines["django"].from_string("{% csrf_token %}").render({}, request)
    token = page.split('value="')[1].split('"')[0]
    assert _unmask_cipher_token(token) == SECRET and reads["reads"] == 1
    reads.clear()
    engines["django"].from_string("no form").render({}, _get_with_cookie())
    assert reads["reads"] == 0  # made only where a template uses it
