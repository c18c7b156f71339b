"""rotate_field_keys: a round trip to a new key, and a wrong key that fails loudly."""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from project.core.models import CANARY_PLAINTEXT, KeyCanary
from runner.models import Subject
from tests.factories import SubjectFactory

pytestmark = pytest.mark.django_db

FIELDS = ("name_first", "email", "dob", "prolific_pid", "address")


def raw(model, pk, field):
    qn = connection.ops.quote_name
    meta = model._meta
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn(meta.get_field(field).column)} FROM {qn(meta.db_table)} WHERE {qn(meta.pk.column)} = %s",
            [meta.pk.get_db_prep_value(pk, connection)],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def people():
    KeyCanary.objects.all().delete()
    KeyCanary.objects.create(value=CANARY_PLAINTEXT)
    return [
        SubjectFactory(
            name_first="Ann", email="ann@example.org", dob=date(1990, 7, 14), prolific_pid="5f3a", address="1 Lane"
        ),
        SubjectFactory(name_first="Bob", email="", dob=None),
    ]


def rotate(*args) -> str:
    out = StringIO()
    call_command("rotate_field_keys", *args, stdout=out)
    return out.getvalue()


def test_round_trip(people, monkeypatch):
    old = list(settings.FIELD_ENCRYPTION_KEY)
    new = Fernet.generate_key().decode()
    before = {(s.pk, f): raw(Subject, s.pk, f) for s in people for f in FIELDS}
    monkeypatch.setattr(settings, "FIELD_ENCRYPTION_KEY", [new, *old])
    text = rotate()
    assert "runner.Subject.email: 2" in text and "core.KeyCanary.value: 1" in text
    assert "re-encrypted and verified" in text
    only_new, only_old = Fernet(new), MultiFernet([Fernet(k) for k in old])
    for (pk, field), token in before.items():
        if token is None:
            assert raw(Subject, pk, field) is None
            continue
        after = raw(Subject, pk, field)
        assert after != token
        assert only_new.decrypt(after.encode()) == only_old.decrypt(token.encode())
        with pytest.raises(InvalidToken):
            only_old.decrypt(after.encode())
    # The application, configured with NEW,OLD, reads the same values back.
    import encrypted_model_fields.fields as ef

    monkeypatch.setattr(ef, "CRYPTER", MultiFernet([Fernet(new), *[Fernet(k) for k in old]]))
    ann = Subject.objects.get(pk=people[0].pk)
    assert (ann.name_first, ann.email, ann.dob, ann.prolific_pid) == (
        "Ann",
        "ann@example.org",
        date(1990, 7, 14),
        "5f3a",
    )
    assert KeyCanary.objects.get().value == CANARY_PLAINTEXT
    # ... and the old key can now be dropped: the canary check passes with NEW alone.
    monkeypatch.setattr(ef, "CRYPTER", MultiFernet([Fernet(new)]))
    from project.core.keys import verify_field_key

    assert verify_field_key() is True


def test_wrong_key_fails_loudly_and_changes_nothing(people, monkeypatch):
    before = raw(Subject, people[0].pk, "email")
    monkeypatch.setattr(
        settings, "FIELD_ENCRYPTION_KEY", [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    )
    with pytest.raises(CommandError, match="cannot be decrypted with any configured key"):
        rotate()
    assert raw(Subject, people[0].pk, "email") == before


def test_one_key_is_refused(people, monkeypatch):
    monkeypatch.setattr(settings, "FIELD_ENCRYPTION_KEY", list(settings.FIELD_ENCRYPTION_KEY)[:1])
    with pytest.raises(CommandError, match="NEW_KEY,OLD_KEY"):
        rotate()
    assert "would re-encrypt" in rotate("--dry-run")


def test_invalid_key_is_refused(people, monkeypatch):
    monkeypatch.setattr(settings, "FIELD_ENCRYPTION_KEY", ["not-a-key", *settings.FIELD_ENCRYPTION_KEY])
    with pytest.raises(CommandError, match="invalid Fernet key"):
        rotate()
