"""Encryption-key canary.

django-encrypted-model-fields hands back the ciphertext, silently, when the
configured key cannot decrypt a value. So we store one known value under the key
in use and check at start-up that it decrypts: a wrong ``FIELD_ENCRYPTION_KEY``
stops the server with a clear message instead of serving garbage.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from django.db import DatabaseError, connection

from .models import CANARY_PLAINTEXT, KeyCanary

WRONG_KEY_MESSAGE = (
    "FIELD_ENCRYPTION_KEY cannot decrypt the data in this database (the stored key canary "
    "does not decrypt). Personal fields would be unreadable. Set FIELD_ENCRYPTION_KEY to the key "
    "the data were written with (several keys, comma-separated, to rotate: new key first)."
)


class WrongEncryptionKey(Exception):
    pass


def _stored_canary() -> str | None:
    table = KeyCanary._meta.db_table
    try:
        if table not in connection.introspection.table_names():
            return None
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT value FROM {connection.ops.quote_name(table)} ORDER BY id LIMIT 1")
            row = cursor.fetchone()
    except DatabaseError:
        return None
    return row[0] if row else None


def verify_field_key() -> bool:
    """Raise WrongEncryptionKey if the stored canary does not decrypt to its text.

    Returns True when a canary was checked, False when there is none yet.
    """
    from encrypted_model_fields.fields import decrypt_str

    raw = _stored_canary()
    if raw is None:
        return False
    try:
        plain = decrypt_str(raw)
    except InvalidToken as exc:
        raise WrongEncryptionKey(WRONG_KEY_MESSAGE) from exc
    if plain != CANARY_PLAINTEXT:
        raise WrongEncryptionKey(WRONG_KEY_MESSAGE)
    return True


def ensure_canary(**_kwargs) -> None:
    """Write the canary under the current key if there is none (after migrate)."""
    if _stored_canary() is None and KeyCanary._meta.db_table in connection.introspection.table_names():
        KeyCanary.objects.create(value=CANARY_PLAINTEXT)
