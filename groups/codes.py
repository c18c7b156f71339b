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
import threading
import time
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
# Two counters. The browser (a signed cookie, ``CODE_ATTEMPTS_PER_MINUTE``, SPEC 2): each
# post is counted BEFORE its code is looked at, one atomic increment (a Redis INCR in a
# script that also starts the 60-second window, or the in-process cache's locked incr),
# and a right code gives its count back; a burst of parallel wrong codes from one browser
# therefore evaluates at most the limit. The address
# (``CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS``): WRONG codes from it, so that a room of any
# size behind one NAT (a lab, bots from one machine) enters its right code. A post takes
# one of the address's evaluation slots first, atomically: allowed while wrong codes plus
# codes being evaluated stay within the limit; a post finding every slot busy with codes
# still being looked at waits for one (``CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS``), and one
# finding the wrong codes at the limit gets 429 at once. An evaluated code frees its slot,
# and a wrong one adds to the wrong count in the same step, so however many browser ids an
# address collects and however many posts arrive at once, it never has more than the limit
# of wrong codes evaluated in a minute.
#
# The cookie comes with the page; a post without it counts as the browser "this address
# without a cookie", so dropping the cookie gains nothing.

BROWSER_COOKIE = "ensemble_browser"
_BROWSER_SALT = "groups.codes.browser"
_WINDOW_SECONDS = 60
_INCR_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""
_DECR_SCRIPT = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"
# KEYS: the address's wrong count, its codes being evaluated; ARGV: limit, window.
# 1: a slot is taken; 0: every slot is busy (wait); -1: the wrong codes are at the limit.
_TAKE_SLOT_SCRIPT = """
local wrong = tonumber(redis.call('GET', KEYS[1]) or '0')
if wrong >= tonumber(ARGV[1]) then return -1 end
local busy = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if wrong + busy > tonumber(ARGV[1]) then redis.call('DECR', KEYS[2]) return 0 end
return 1
"""
# KEYS as above; ARGV: 1 for a wrong code, window. Frees the slot, counts a wrong code.
_FREE_SLOT_SCRIPT = """
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
if ARGV[1] == '1' then
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
return 1
"""
_SLOT_WAIT_STEP = 0.05
_local_slots = threading.Lock()  # the in-process counters' slot bookkeeping (no Redis)


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
    """True while the browser has used up its attempts of the minute or the address its
    wrong codes. A browser without its cookie is about to get one (and a counter of its
    own), so only its address counts for it here."""
    (browser_key, browser_limit), (address_key, address_limit) = _keys(kind, client)
    if not client.new_browser and _peek(browser_key) >= browser_limit:
        return True
    return _peek(address_key) >= address_limit


def begin_attempt(*, kind: str, client: Client) -> bool:
    """Count one attempt before its code is evaluated and take one of the address's
    evaluation slots; False (evaluate nothing, answer 429) when the browser's count is over
    its limit, the address's wrong codes are at theirs, or no slot frees up in
    ``CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS``. The address is looked at only for browsers
    within theirs, so one browser hammering away cannot use up its address's attempts.
    After True, call ``attempt_succeeded``, ``attempt_failed`` or ``attempt_abandoned``."""
    (browser_key, browser_limit), _address = _keys(kind, client)
    if _count(browser_key, 1) > browser_limit:
        return False
    deadline = time.monotonic() + settings.CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS
    while True:
        taken = _take_slot(kind, client)
        if taken or taken is None or time.monotonic() >= deadline:
            return bool(taken)
        time.sleep(_SLOT_WAIT_STEP)  # codes of this address are being looked at right now


def attempt_succeeded(*, kind: str, client: Client) -> None:
    """A right code: its browser count given back, its slot freed; the address counts no
    wrong code. A room entering right codes uses up nothing."""
    _count(_keys(kind, client)[0][0], -1)
    _free_slot(kind, client, wrong=False)


def attempt_failed(*, kind: str, client: Client) -> None:
    """A wrong (or unreadable) code: its slot freed and one wrong code for the address."""
    _free_slot(kind, client, wrong=True)


def attempt_abandoned(*, kind: str, client: Client) -> None:
    """The check itself failed (a server error): the slot freed, nothing counted as wrong."""
    _free_slot(kind, client, wrong=False)


def _slot_keys(kind: str, client: Client) -> tuple[str, str, int]:
    _browser, (address_key, limit) = _keys(kind, client)
    return address_key, f"groups:code-attempts:{kind}:addr-busy:{client.address}", limit


def _take_slot(kind: str, client: Client) -> bool | None:
    """True: a slot is taken; False: all are busy; None: the wrong codes are at the limit."""
    wrong_key, busy_key, limit = _slot_keys(kind, client)
    if settings.REDIS_URL:
        keys = [cache.make_and_validate_key(k) for k in (wrong_key, busy_key)]
        taken = int(_redis_call("eval", _TAKE_SLOT_SCRIPT, 2, *keys, limit, _WINDOW_SECONDS))
        return None if taken < 0 else bool(taken)
    with _local_slots:
        wrong, busy = cache.get(wrong_key) or 0, cache.get(busy_key) or 0
        if wrong >= limit:
            return None
        if wrong + busy >= limit:
            return False
        cache.set(busy_key, busy + 1, timeout=_WINDOW_SECONDS)
        return True


def _free_slot(kind: str, client: Client, *, wrong: bool) -> None:
    wrong_key, busy_key, _limit = _slot_keys(kind, client)
    if settings.REDIS_URL:
        keys = [cache.make_and_validate_key(k) for k in (wrong_key, busy_key)]
        _redis_call("eval", _FREE_SLOT_SCRIPT, 2, *keys, "1" if wrong else "0", _WINDOW_SECONDS)
        return
    with _local_slots:
        busy = cache.get(busy_key) or 0
        if busy > 0:
            cache.set(busy_key, busy - 1, timeout=_WINDOW_SECONDS)
        if wrong:
            _count(wrong_key, 1)
