"""Test settings: the base settings with fast hashing and throwaway keys.

``DATABASE_URL`` and ``REDIS_URL`` are honoured, so the same suite runs on SQLite
(embedded default) and on PostgreSQL + Redis (``.ci/run``).
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("ENSEMBLE_VAR_DIR", str(Path(tempfile.gettempdir()) / "ensemble-test-var"))

from .base import *  # noqa: E402,F403
from .base import DATABASES  # noqa: E402

TEST_DB_SUFFIX = os.environ.setdefault("TEST_DB_SUFFIX", str(os.getpid()))

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file (not :memory:) so that a live server process can share it; one per
    # test process so that parallel runs never share a database.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(os.environ["ENSEMBLE_VAR_DIR"]) / f"test-{TEST_DB_SUFFIX}.sqlite3")
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_ensemble_{TEST_DB_SUFFIX}"}

# Parallel test runs share one Redis: give each its own key space.
from .base import CACHES, CHANNEL_LAYERS, REDIS_URL  # noqa: E402

if REDIS_URL:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"ens-test-{TEST_DB_SUFFIX}"
    CACHES["default"]["KEY_PREFIX"] = f"ens-test-{TEST_DB_SUFFIX}"
CONTEXT_KEY_PREFIX = f"ens-test-{TEST_DB_SUFFIX}:ctx"
