import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

from project.core.keys import WrongEncryptionKey, ensure_canary, verify_field_key
from project.core.models import KeyCanary

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_names_backends_and_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["engine"] == connection.vendor
    assert body["database"]["ok"] is True
    expected_layer = "RedisChannelLayer" if settings.REDIS_URL else "InMemoryChannelLayer"
    assert body["channel_layer"] == {**body["channel_layer"], "backend": expected_layer, "ok": True}
    assert body["context_store"]["backend"] == ("redis" if settings.REDIS_URL else "memory")
    assert body["context_store"]["ok"] is True


@pytest.mark.django_db
def test_canary_verifies_under_the_right_key():
    KeyCanary.objects.all().delete()
    assert verify_field_key() is False  # nothing stored yet
    ensure_canary()
    assert verify_field_key() is True


@pytest.mark.django_db
def test_wrong_key_is_detected(monkeypatch):
    KeyCanary.objects.all().delete()
    ensure_canary()
    import encrypted_model_fields.fields as fields

    wrong = Fernet(Fernet.generate_key())
    monkeypatch.setattr(fields, "CRYPTER", wrong)
    with pytest.raises(WrongEncryptionKey, match="FIELD_ENCRYPTION_KEY cannot decrypt"):
        verify_field_key()


def test_wrong_key_stops_startup(tmp_path):
    """End to end: migrate under one key, then start (check, and the ASGI app)
    under another: both refuse with the clear message and a non-zero exit."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENSEMBLE_VAR_DIR": str(tmp_path / "var"),
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    env.pop("REDIS_URL", None)
    run = lambda args, e: subprocess.run(  # noqa: E731
        [sys.executable, *args], cwd=ROOT, env=e, capture_output=True, text=True, timeout=120
    )
    assert run(["manage.py", "migrate", "-v0"], env).returncode == 0
    wrong = {**env, "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    checked = run(["manage.py", "check"], wrong)
    assert checked.returncode != 0
    assert "FIELD_ENCRYPTION_KEY cannot decrypt" in checked.stderr
    started = run(["-c", "import asgi"], wrong)
    assert started.returncode == 3
    assert "FIELD_ENCRYPTION_KEY cannot decrypt" in started.stderr
    # Rotation: new key first, old key second still reads the data.
    rotated = {**env, "FIELD_ENCRYPTION_KEY": wrong["FIELD_ENCRYPTION_KEY"] + "," + env["FIELD_ENCRYPTION_KEY"]}
    assert run(["manage.py", "check"], rotated).returncode == 0


def test_production_settings_refuse_without_secrets():
    env = {
        k: v for k, v in os.environ.items() if k not in {"DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEY", "PSEUDONYM_KEY"}
    }
    env["DJANGO_SETTINGS_MODULE"] = "project.settings.production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "FIELD_ENCRYPTION_KEY" in result.stderr
    assert json.dumps("KTShDerAzvR3") not in result.stderr  # no sample key anywhere
