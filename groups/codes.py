"""Participant and experimenter codes (SPEC section 2).

Codes are ``GROUP_CODE_LENGTH`` characters from ``GROUP_CODE_ALPHABET`` (no
look-alikes) drawn with ``secrets``, typed case-insensitively, and unique among
unexpired group sessions: a new code collides with no live participant code and
no live experimenter code, so the two kinds can never be mistaken for each other.
Wrong attempts are counted per browser and per client address (see
:func:`begin_attempt`), atomically, in Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from .state import GroupError

PARTICIPANT, EXPERIMENTER = "participant", "experimenter"
_STRIP = str.maketrans("", "", " -_.\t")


def normalize_code(raw: str | None) -> str:
    """Upper-case, without spaces or dashes: what a person means by what they typed."""
    return (raw or "").translate(_STRIP).upper()


def looks_like_code(code: str) -> bool:
    alphabet = set(settings.GROUP_CODE_ALPHABET)
    return len(code) == settings.GROUP_CODE_LENGTH and all(c in alphabet for c in code)


def random_code() -> str:
    alphabet = settings.GROUP_CODE_ALPHABET
    return "".join(secrets.choice(alphabet) for _ in range(settings.GROUP_CODE_LENGTH))


def code_in_use(code: str, *, now=None) -> bool:
    from .models import GroupSession

    now = now or timezone.now()
    return (
        GroupSession.objects.filter(expires__gt=now)
        .filter(Q(participant_code=code) | Q(experimenter_code=code))
        .exists()
    )


#: The PostgreSQL advisory lock that makes choosing codes and storing them one step.
CODES_LOCK = 0x67726F7570  # "group"


def new_code(*, avoid: set[str] | frozenset = frozenset(), attempts: int = 50) -> str:
    """A code no unexpired group session uses (as either kind) and not in ``avoid``.
    Call it in the transaction that stores the code: until that transaction ends, no
    other one can choose a code (on PostgreSQL an advisory lock, ``CODES_LOCK``; SQLite
    runs one write transaction at a time), so two sessions started at the same moment
    never get the same code.

    Raises ``GroupError(code="codes_exhausted")`` if ``attempts`` draws all collide.
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        if not connection.in_atomic_block:
            raise RuntimeError("new_code() must run in the transaction that stores the code")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CODES_LOCK])
    for _ in range(attempts):
        code = random_code()
        if code not in avoid and not code_in_use(code):
            return code
    raise GroupError("Could not find a free group code; try again later.", code="codes_exhausted")


# ---- rate limiting of wrong attempts --------------------------------------------
#
# An attempt is counted BEFORE its code is looked at: one atomic increment per counter
# (Redis INCR in a script that also starts the 60-second window, or the in-process
# cache's locked incr), and the code is evaluated only if both counts are within their
# limits. A burst of parallel wrong codes therefore evaluates at most the limit, however
# many arrive at once and on however many processes. A right code gives its count back.
#
# Two counters: the browser (a signed cookie, ``CODE_ATTEMPTS_PER_MINUTE``, SPEC 2) and the
# address (``CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS``, higher), so one participant's typos
# never lock out a room behind one NAT. The cookie comes with the page; a post without it
# counts as the browser "this address without a cookie", so dropping the cookie gains
# nothing. (Whoever fetches the page many times holds many ids: the address's limit is
# then the bound.)

BROWSER_COOKIE = "ensemble_browser"
_BROWSER_SALT = "groups.codes.browser"
_WINDOW_SECONDS = 60
_INCR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_DECR_SCRIPT = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"


class CountersUnavailable(Exception):
    """The attempt counters (Redis) do not answer: no code is evaluated uncounted."""


@dataclass(frozen=True)
class Client:
    """Who is typing codes: ``browser`` (the cookie's id, or the address's cookie-less
    bucket) and ``address``; ``new_browser`` is the id to set as a cookie, if any."""

    browser: str
    address: str
    new_browser: str | None = None


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_trusted_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_address(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or, when that is one of ``TRUSTED_PROXIES``,
    the right-most ``X-Forwarded-For`` entry that is not a trusted proxy (the one our
    own proxy appended; entries to its left are whatever the client claimed)."""
    remote = request.META.get("REMOTE_ADDR") or "unknown"
    if not _is_trusted_proxy(remote):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_trusted_proxy(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # a broken chain: count the proxy, never a client-chosen string
    return remote


def identify(request) -> Client:
    address = client_address(request)
    browser = request.get_signed_cookie(BROWSER_COOKIE, default=None, salt=_BROWSER_SALT)
    if browser:
        return Client(browser=f"b:{browser}", address=address)
    # An id is handed out with the page (GET), never in answer to a post: posts without
    # the cookie stay in their address's cookie-less count.
    new = secrets.token_urlsafe(16) if request.method in ("GET", "HEAD") else None
    return Client(browser=f"a:{address}", address=address, new_browser=new)


def remember_browser(client: Client, response):
    """Give a browser without one its id cookie with the attach page, so that its posts
    count as its own."""
    if client.new_browser:
        response.set_signed_cookie(
            BROWSER_COOKIE, client.new_browser, salt=_BROWSER_SALT, max_age=30 * 86400,
            httponly=True, samesite="Lax", secure=settings.SESSION_COOKIE_SECURE,
        )  # fmt: skip
    return response


def _keys(kind: str, client: Client) -> list[tuple[str, int]]:
    return [
        (f"groups:code-attempts:{kind}:{client.browser}", settings.CODE_ATTEMPTS_PER_MINUTE),
        (f"groups:code-attempts:{kind}:addr:{client.address}", settings.CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS),
    ]


@lru_cache(maxsize=4)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _redis_call(command: str, *args):
    import redis

    try:
        return getattr(_redis(settings.REDIS_URL), command)(*args)
    except redis.RedisError as exc:
        raise CountersUnavailable(type(exc).__name__) from exc


def _count(key: str, delta: int) -> int:
    """Add ``delta`` (+1 or -1) to a counter and return it, atomically across processes;
    the first count starts a 60-second window, a give-back never creates a counter."""
    if settings.REDIS_URL:
        script = _INCR_SCRIPT if delta > 0 else _DECR_SCRIPT
        return int(_redis_call("eval", script, 1, cache.make_and_validate_key(key), _WINDOW_SECONDS))
    try:  # the in-process cache (one process): each incr/decr holds its lock
        return cache.incr(key, delta)
    except ValueError:
        if delta < 0:
            return 0
        return delta if cache.add(key, delta, timeout=_WINDOW_SECONDS) else cache.incr(key, delta)


def _peek(key: str) -> int:
    if settings.REDIS_URL:
        return int(_redis_call("get", cache.make_and_validate_key(key)) or 0)
    return cache.get(key) or 0


def is_rate_limited(*, kind: str, client: Client) -> bool:
    """True while the browser or the address has used up its attempts of the minute.
    A browser without its cookie is about to get one (and a counter of its own), so
    only its address counts for it here."""
    keys = _keys(kind, client)[1:] if client.new_browser else _keys(kind, client)
    return any(_peek(key) >= limit for key, limit in keys)


def begin_attempt(*, kind: str, client: Client) -> bool:
    """Count one attempt before its code is evaluated; False (evaluate nothing, answer
    429) when the browser's or the address's count is over its limit. The address is
    counted only for browsers within theirs, so one browser hammering away cannot use up
    its address's attempts."""
    (browser_key, browser_limit), (address_key, address_limit) = _keys(kind, client)
    if _count(browser_key, 1) > browser_limit:
        return False
    return _count(address_key, 1) <= address_limit


def attempt_succeeded(*, kind: str, client: Client) -> None:
    """A right code: give its count back, so a room entering right codes uses up nothing."""
    for key, _limit in _keys(kind, client):
        _count(key, -1)
