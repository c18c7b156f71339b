"""``manage.py rotate_field_keys``: re-encrypt every encrypted field under the first key.

Rotation: put the new key first in ``FIELD_ENCRYPTION_KEY`` and the old one(s) after it
(``FIELD_ENCRYPTION_KEY=NEW,OLD``), run this command, then drop the old key. Every value of
every encrypted field (Subject's personal fields, the key canary, any other
``Encrypted*Field``) is decrypted with any configured key and encrypted again with the
first, in one transaction; each new value is verified to decrypt under the first key
alone. A value no configured key can decrypt stops the command with nothing changed.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from encrypted_model_fields.fields import EncryptedMixin

BATCH = 500


def encrypted_fields() -> list[tuple[type, object]]:
    """(model, field) for every concrete encrypted field of every installed model."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedMixin):
                found.append((model, field))
    return found


def _keys() -> list[str]:
    keys = settings.FIELD_ENCRYPTION_KEY
    return list(keys) if isinstance(keys, list | tuple) else [keys]


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field under the first FIELD_ENCRYPTION_KEY (set NEW,OLD first)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Check every value decrypts; change nothing.")

    def handle(self, *args, dry_run=False, **opts):
        keys = _keys()
        if len(keys) < 2 and not dry_run:
            raise CommandError(
                "FIELD_ENCRYPTION_KEY holds one key. To rotate, set it to NEW_KEY,OLD_KEY "
                "(the new key first) and run this command again."
            )
        try:
            everyone = MultiFernet([Fernet(k) for k in keys])
            newest = Fernet(keys[0])
        except (ValueError, TypeError) as exc:
            raise CommandError(f"FIELD_ENCRYPTION_KEY holds an invalid Fernet key: {exc}") from exc
        counts: dict[str, int] = {}
        try:
            with transaction.atomic():
                for model, field in encrypted_fields():
                    label = f"{model._meta.label}.{field.name}"
                    counts[label] = self._rotate(model, field, everyone, newest, label, dry_run)
                if dry_run:
                    transaction.set_rollback(True)
        except _Undecryptable as exc:
            raise CommandError(str(exc)) from exc
        total = sum(counts.values())
        for label, n in counts.items():
            self.stdout.write(f"  {label}: {n}")
        verb = "would re-encrypt" if dry_run else "re-encrypted and verified"
        self.stdout.write(self.style.SUCCESS(f"{verb} {total} values in {len(counts)} fields under the first key."))

    def _rotate(self, model, field, everyone: MultiFernet, newest: Fernet, label: str, dry_run: bool) -> int:
        qn = connection.ops.quote_name
        table, column, pk = qn(model._meta.db_table), qn(field.column), qn(model._meta.pk.column)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY {pk}")
            rows = cursor.fetchall()
        bad = []
        updates = []
        for pk_value, token in rows:
            raw = token.encode() if isinstance(token, str) else bytes(token)
            try:
                plain = everyone.decrypt(raw)
            except InvalidToken:
                bad.append(pk_value)
                continue
            rotated = everyone.rotate(raw)
            if newest.decrypt(rotated) != plain:
                raise _Undecryptable(f"{label}: verification failed for row {pk_value}")
            updates.append((rotated.decode(), pk_value))
        if bad:
            shown = ", ".join(str(b) for b in bad[:5]) + (" …" if len(bad) > 5 else "")
            raise _Undecryptable(
                f"{label}: {len(bad)} value(s) cannot be decrypted with any configured key (rows {shown}). "
                "Is the old key in FIELD_ENCRYPTION_KEY (NEW,OLD)? Nothing was changed."
            )
        if not dry_run:
            with connection.cursor() as cursor:
                for start in range(0, len(updates), BATCH):
                    cursor.executemany(
                        f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", updates[start : start + BATCH]
                    )
        return len(updates)


class _Undecryptable(Exception):
    pass
