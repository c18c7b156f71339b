"""Production settings: refuse to start without real secrets; secure cookies."""

import os

from django.core.exceptions import ImproperlyConfigured

_missing = [name for name in ("DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY", "PSEUDONYM_KEY") if not os.environ.get(name)]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables: "
        + ", ".join(_missing)
        + ". Generate a field key with: python -c 'from cryptography.fernet import Fernet;"
        " print(Fernet.generate_key().decode())'"
    )

os.environ.setdefault("DEBUG", "0")

from .base import *  # noqa: E402,F403

DEBUG = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
