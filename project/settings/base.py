"""Base settings: every value comes from the environment (shared/SPEC.md section 1).

Embedded defaults let ``make run`` work on a fresh clone: SQLite, the in-process
channel layer and context store, and local secrets generated into ``var/`` (git-ignored).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_float, env_int, env_list, local_secret

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("ENSEMBLE_VAR_DIR", BASE_DIR / "var"))

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or local_secret(
    VAR_DIR / "secret_key", lambda: secrets.token_urlsafe(50)
)

# Fernet key(s) for personal fields. A comma-separated list enables rotation:
# the first key encrypts, all keys decrypt.
_field_keys = env_list("FIELD_ENCRYPTION_KEY", [])
FIELD_ENCRYPTION_KEY = _field_keys or [
    local_secret(VAR_DIR / "field_encryption.key", lambda: Fernet.generate_key().decode())
]

# Key for participant pseudonyms (HMAC); kept outside the database.
PSEUDONYM_KEY = os.environ.get("PSEUDONYM_KEY") or local_secret(
    VAR_DIR / "pseudonym.key", lambda: secrets.token_urlsafe(32)
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "encrypted_model_fields",
    "channels",
    "project.core",
    "runner",
    "groups",
    "realtime",
    "exports",
    "bots",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.core.middleware.ContentSecurityPolicyMiddleware",
]
# Our pages' Content-Security-Policy (project/core/middleware.py); unset: the modest default
# (frame-ancestors, object-src, base-uri), empty: none.
CONTENT_SECURITY_POLICY = os.environ.get("CONTENT_SECURITY_POLICY")

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "project.core.csrf.context_processor",  # after Django's own: one random read a token
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let several requests write without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool("DATABASE_POOL", True):
    # daphne runs each request's sync code in a thread of its own, so without a pool a
    # burst of answers opens one connection each and fails past max_connections
    # (measured: 401 of 500 simultaneous answers lost). With the pool they queue instead.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 2),
        "max_size": env_int("DATABASE_POOL_MAX", 20),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 60),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement at its first execution on a connection (0), but only for
    # the cursors that bind parameters on the server: those project/core/rows.py opens for a
    # ``Select(prepare=True)``; Django's own (client-side binding) never prepare. With 5, a
    # pool of 20 connections planned the live page's reload read (1.4 ms cold) for its first
    # 100 uses: most reloads of a short session.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 0)
# Threads that run requests' Django part (middleware and view), kept and reused; more
# requests at once wait their turn on the event loop (project/core/http.py).
HTTP_THREADS = env_int("HTTP_THREADS", 256)
if HTTP_THREADS < 1:
    raise ImproperlyConfigured(f"HTTP_THREADS must be at least 1, not {HTTP_THREADS}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# Connections per process in the channels-redis pool. redis-py's default (100)
# silently drops broadcasts once a process holds more sockets than that.
CHANNEL_LAYER_POOL_SIZE = env_int("CHANNEL_LAYER_POOL_SIZE", 1000)
CHANNEL_LAYER_CAPACITY = env_int("CHANNEL_LAYER_CAPACITY", 1000)
CHANNEL_LAYER_GROUP_EXPIRY = env_int("CHANNEL_LAYER_GROUP_EXPIRY", 86400)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "max_connections": CHANNEL_LAYER_POOL_SIZE}],
                "capacity": CHANNEL_LAYER_CAPACITY,
                "group_expiry": CHANNEL_LAYER_GROUP_EXPIRY,
                "prefix": os.environ.get("CHANNEL_LAYER_PREFIX", "ensemble"),
            },
        }
    }
    CONTEXT_STORE = "redis"
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CONTEXT_STORE = "memory"
CONTEXT_KEY_PREFIX = os.environ.get("CONTEXT_KEY_PREFIX", "ensemble:ctx")
# What a group context may hold (groups/context.py): nesting levels, and its size as JSON.
GROUP_CONTEXT_MAX_DEPTH = env_int("GROUP_CONTEXT_MAX_DEPTH", 32)
GROUP_CONTEXT_MAX_BYTES = env_int("GROUP_CONTEXT_MAX_BYTES", 1024 * 1024)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "admin:login"
# Where a login without a usable ``next=`` lands: the editor (Django's default,
# /accounts/profile/, does not exist here).
LOGIN_REDIRECT_URL = "admin:index"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static", ("jsPsych", BASE_DIR / "thirdparty" / "jsPsych")]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))

# Folders searched for experiment packages (callbacks, group flows).
EXPERIMENTS_PATH = [BASE_DIR / "experiments"] + [Path(p) for p in env_list("EXPERIMENTS_PATH", [], sep=os.pathsep)]
#: Reports of jsPsych timelines that failed in the browser (runner/failures.py): per run and
#: minute, and the largest report body accepted.
JSPSYCH_FAILURES_PER_MINUTE = env_int("JSPSYCH_FAILURES_PER_MINUTE", 10)
JSPSYCH_FAILURE_MAX_BYTES = env_int("JSPSYCH_FAILURE_MAX_BYTES", 4096)

# Limits and timeouts (STYLE.md 11: they are settings).
TICKET_SECRET_BYTES = 24  # 192 bits, URL-safe base64 -> 32 characters
GROUP_CODE_LENGTH = 4
GROUP_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
GROUP_SESSION_HOURS = env_int("GROUP_SESSION_HOURS", 12)
# Wrong group codes allowed per minute: per browser (SPEC 2), and per client address, higher,
# so that one participant's typos never lock out a room behind one NAT (groups/codes.py).
CODE_ATTEMPTS_PER_MINUTE = env_int("CODE_ATTEMPTS_PER_MINUTE", 10)
CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS = env_int("CODE_ATTEMPTS_PER_MINUTE_PER_ADDRESS", 100)
# A code post that finds all of its address's evaluation slots busy with codes still being
# looked at (a room of participants entering at once) waits up to this long for one.
CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS = env_float("CODE_ATTEMPTS_ADDRESS_WAIT_SECONDS", 10.0)
# Reverse proxies (addresses or networks) whose X-Forwarded-For is believed; from anyone
# else the header is ignored and the connecting address counts.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network") from _exc
# Largest request body, in bytes: refused with 413 before it is read (project/core/bodies.py,
# project/core/http.py). The largest legitimate one is the stimulus import: a 500 MiB zip
# plus a 20 MiB CSV table (runner/editor_views.py) plus the form around them.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 521 * 1024 * 1024)
# Largest WebSocket frame a client may send; a larger one closes the socket (4009).
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024)
# Deepest nesting of a client's socket message (the message object is level 1); deeper
# is refused (invalid_message, or bad_patch inside a set_context patch).
WS_MAX_JSON_DEPTH = env_int("WS_MAX_JSON_DEPTH", 32)

# Live group sessions (read by realtime.consumers, groups.selectors).
# A participant state not acknowledged is sent again every GROUP_ACK_RESEND_SECONDS,
# at most GROUP_ACK_RESEND_TIMES times per state.
GROUP_ACK_RESEND_SECONDS = env_float("GROUP_ACK_RESEND_SECONDS", 1.0)
GROUP_ACK_RESEND_TIMES = env_int("GROUP_ACK_RESEND_TIMES", 30)
# A participant socket silent for longer than this is closed (4008) and shown offline.
# Clients ping every 3 s; keep it at most 8 s so that a vanished browser shows as
# disconnected within 10 s (tests/realtime/test_presence.py).
GROUP_PRESENCE_TIMEOUT_SECONDS = env_float("GROUP_PRESENCE_TIMEOUT_SECONDS", 8.0)
# Acknowledgements and connection changes are written together at most this often.
GROUP_PRESENCE_FLUSH_SECONDS = env_float("GROUP_PRESENCE_FLUSH_SECONDS", 0.15)
# Each server process holds a lease (a Redis key with this time to live, renewed every
# quarter of it) on the participant sockets it counted; when a process dies, another
# takes its connections off the console within 1.75 times this (realtime/leases.py):
# 5 s keeps it within the 10 s in which a vanished browser shows as offline.
GROUP_PRESENCE_LEASE_SECONDS = env_float("GROUP_PRESENCE_LEASE_SECONDS", 5.0)
if GROUP_PRESENCE_LEASE_SECONDS <= 0:
    raise ImproperlyConfigured(f"GROUP_PRESENCE_LEASE_SECONDS must be above 0, not {GROUP_PRESENCE_LEASE_SECONDS}")
# Answers are broadcast (the console's count, "n of m ready") at most this long after
# they are stored, a burst of answers as one snapshot.
GROUP_ANSWER_FLUSH_SECONDS = env_float("GROUP_ANSWER_FLUSH_SECONDS", 0.1)
# Pages arriving on the waiting screen ("ready") are broadcast the same way: one snapshot
# per burst, not one per page (N pages gathering would send N frames to each of them).
GROUP_READY_FLUSH_SECONDS = env_float("GROUP_READY_FLUSH_SECONDS", 0.1)
# The answers of a group experiment waiting at the same moment in one process are stored
# by one transaction, at most this many (runner/batching.py); RUN_ANSWER_BATCH=0 stores
# each alone.
RUN_ANSWER_BATCH = env_bool("RUN_ANSWER_BATCH", True)
RUN_ANSWER_BATCH_MAX = env_int("RUN_ANSWER_BATCH_MAX", 200)
# Group flow control (issue 20): each server process runs one timer scheduler
# (groups/timers.py) unless GROUP_TIMERS=0; it looks for timers armed by other processes
# at least every GROUP_TIMER_POLL_SECONDS (one indexed query), and sleeps until the
# earliest due timer otherwise, so a timer fires well within 250 ms of its deadline.
GROUP_TIMERS = env_bool("GROUP_TIMERS", True)
GROUP_TIMER_POLL_SECONDS = env_float("GROUP_TIMER_POLL_SECONDS", 0.1)
# How many of the latest step-log entries the experimenter's snapshot (console) carries.
GROUP_CONSOLE_LOG_ENTRIES = env_int("GROUP_CONSOLE_LOG_ENTRIES", 20)
# The live page (docs/groups.md, "The live page"): a step is revealed on every page at
# starts_at = the moment after the commit that started it + a lead time: per step the p99
# of the "content ready" delays pages reported (far outliers dropped), the lower median of
# that over the last GROUP_LIVE_LEAD_STEPS steps, plus GROUP_LIVE_LEAD_MARGIN_MS, kept
# within [MIN, MAX]; DEFAULT before any report.
GROUP_LIVE_LEAD_MIN_MS = env_int("GROUP_LIVE_LEAD_MIN_MS", 30)
GROUP_LIVE_LEAD_MAX_MS = env_int("GROUP_LIVE_LEAD_MAX_MS", 1500)
GROUP_LIVE_LEAD_DEFAULT_MS = env_int("GROUP_LIVE_LEAD_DEFAULT_MS", 150)
GROUP_LIVE_LEAD_MARGIN_MS = env_int("GROUP_LIVE_LEAD_MARGIN_MS", 30)
GROUP_LIVE_LEAD_STEPS = env_int("GROUP_LIVE_LEAD_STEPS", 3)
# Push each step's content (questions, timeline) over the socket, built once per step.
# False: every page fetches its own (for stimulus scripts that read the participant's run).
GROUP_LIVE_PUSH_CONTENT = env_bool("GROUP_LIVE_PUSH_CONTENT", True)

# Start-up delivery self-check (realtime.selfcheck, run by asgi.py): a probe broadcast
# through the channel layer must come back within this many seconds, or the server
# refuses to start. DELIVERY_SELFCHECK=0 turns it off.
DELIVERY_SELFCHECK = env_bool("DELIVERY_SELFCHECK", True)
DELIVERY_SELFCHECK_TIMEOUT = env_float("DELIVERY_SELFCHECK_TIMEOUT", 5.0)
RUN_COOKIE_NAME = "ensemble_run"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "ensemble@localhost")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ensemble",
        }
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
