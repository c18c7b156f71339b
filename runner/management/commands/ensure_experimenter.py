"""manage.py ensure_experimenter: a local experimenter account for `make run`.

On first run: creates the staff superuser "experimenter" with a random password
(``secrets``) kept in var/experimenter_password (mode 0600). On every run:
prints the login. The password is printed to stdout only, never logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

USERNAME = "experimenter"
EDITOR_URL = "http://127.0.0.1:8000/editor/"


def password_file() -> Path:
    return Path(settings.VAR_DIR) / "experimenter_password"


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(tmp, path)


class Command(BaseCommand):
    help = "Create the local experimenter account on first run and print its login."

    def _tighten(self, path: Path) -> None:
        """A password file others can read (copied, unpacked, chmod-ed) is set back to 0600."""
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            self.stderr.write(f"{path} was readable by others (mode {mode:o}); it is now 0600.")

    def add_arguments(self, parser):
        parser.add_argument("--url", default=EDITOR_URL, help=f"editor address to print (default {EDITOR_URL})")

    def handle(self, *args, **options):
        path = password_file()
        try:
            stored = path.read_text().strip() if path.exists() else ""
            if stored:
                self._tighten(path)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=USERNAME).first()
            if user is None or not stored:
                password = stored or secrets.token_urlsafe(16)
                if user is None:
                    user = User(username=USERNAME)
                user.is_staff = user.is_superuser = user.is_active = True
                user.set_password(password)
                user.save()
                if not stored:
                    _write_secret(path, password)
            else:
                password = stored
                if not (user.is_staff and user.is_superuser and user.is_active):
                    user.is_staff = user.is_superuser = user.is_active = True
                    user.save(update_fields=["is_staff", "is_superuser", "is_active"])
        if not user.check_password(password):
            self.stdout.write(
                f"Experimenter login: {USERNAME} (its password was changed in the editor; {path} is out of date) "
                f"at {options['url']}"
            )
            return
        self.stdout.write(f"Experimenter login: {USERNAME} / {password} at {options['url']}")
