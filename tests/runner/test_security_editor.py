"""Adversarial input from the experimenter side: callbacks outside the experiments folders,
hostile stimulus zips and tables, editor permissions, the local password file
(docs/security.md)."""

from __future__ import annotations

import io
import os
import re
import stat
import time
import zipfile
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from runner.callbacks import CallbackError, resolve_callable, resolve_module
from runner.models import Response, Session, Stimulus
from runner.stimulus_import import StimulusImportError, import_stimuli

from .builders import CB, build_experiment, start

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


# ------------------------------------------------------------------ callbacks
@pytest.mark.parametrize(
    "dotted",
    [
        "os.system",
        "sys.exit",
        "subprocess.run",
        "builtins.exec",
        "django.core.management.call_command",
        "demo.colors.fmean",  # reached through an experiment module's import: still statistics.fmean
    ],
)
def test_callbacks_must_be_experiment_code(dotted):
    with pytest.raises(CallbackError, match="not in the experiments folders|built into Python"):
        resolve_callable(dotted)


def test_experiment_and_project_callbacks_still_resolve():
    assert resolve_callable("demo.solo.trial_timeline").__name__ == "trial_timeline"
    assert resolve_callable(f"{CB}.one_trial").__name__ == "one_trial"
    assert resolve_module("demo.colors").__name__ == "demo.colors"
    with pytest.raises(CallbackError):
        resolve_module("os")


def test_experiments_path_folder_outside_the_project_is_allowed(settings, tmp_path):
    folder = tmp_path / "lab"
    (folder / "labcode").mkdir(parents=True)
    (folder / "labcode" / "__init__.py").write_text("def trial(run):\n    return []\n")
    settings.EXPERIMENTS_PATH = [*settings.EXPERIMENTS_PATH, folder]
    assert resolve_callable("labcode.trial").__name__ == "trial"


def test_the_most_specific_folder_decides(settings, tmp_path, monkeypatch):
    """An experiments folder inside an installed tree (a deployment) still counts; the rest of
    that tree does not."""
    for package in ("deployedlab", "otherpkg"):
        folder = tmp_path / ("experiments" if package == "deployedlab" else "") / package
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("def trial(run):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("runner.callbacks.sys.base_prefix", str(tmp_path))
    settings.EXPERIMENTS_PATH = [*settings.EXPERIMENTS_PATH, tmp_path / "experiments"]
    assert resolve_callable("deployedlab.trial").__name__ == "trial"
    with pytest.raises(CallbackError, match="not in the experiments folders"):
        resolve_callable("otherpkg.trial")


def test_callback_calling_sys_exit_is_a_polite_500_and_stores_nothing(client):
    experiment = build_experiment(
        [
            {"name": "one", "questions": [{"key": "likes"}]},
            {"name": "two", "stimulus_script": f"{CB}.exits", "questions": [{"key": "again"}]},
        ]
    )
    session = start(client, experiment)
    cur = session.state["current"]
    response = client.post(
        f"/run/{experiment.pk}/",
        {"_order": cur["order"], "_visit": cur["visit"], "_nonce": cur["nonce"], "q-likes": "Yes"},
    )
    assert response.status_code == 500 and b'data-error-code="callback_failed"' in response.content
    assert not Response.objects.exists()


# ------------------------------------------------------------------ stimulus import
def _zip(members: dict[str, bytes], *, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    "location", ["../../etc/passwd", "/etc/passwd", "a/../../b.png", "..\\..\\x.png", "~/x.png", "a\x00.png"]
)
def test_table_locations_cannot_leave_the_media_folder(location):
    with pytest.raises(StimulusImportError) as info:
        import_stimuli(table=f"name,location\nevil,{location}\n".encode())
    assert "plain relative path" in str(info.value) and info.value.errors[0].row == 2
    assert not Stimulus.objects.exists()


def test_zip_member_with_dot_dot_is_stored_inside_stimuli():
    table = b"name,location\nx,x.png\n"
    result = import_stimuli(zip_bytes=_zip({"t.csv": table, "../../x.png": b"png"}))
    stored = result.created[0].location.name
    assert stored.startswith("stimuli/") and ".." not in stored and default_storage.exists(stored)


def test_zip_member_location_with_dot_dot_is_refused():
    with pytest.raises(StimulusImportError, match="plain relative path"):
        import_stimuli(zip_bytes=_zip({"t.csv": b"name,location\nx,../x.png\n", "../x.png": b"png"}))


def test_zip_bomb_is_refused_before_unpacking(settings):
    settings.STIMULUS_IMPORT_MAX_UNPACKED_BYTES = 1_000_000
    bomb = _zip({"t.csv": b"name,location\nx,x.wav\n", "x.wav": b"\0" * 5_000_000}, compression=zipfile.ZIP_DEFLATED)
    assert len(bomb) < 50_000
    with pytest.raises(StimulusImportError, match="unpacks to 5 MB; the limit is 1 MB"):
        import_stimuli(zip_bytes=bomb)
    assert not Stimulus.objects.exists() and not default_storage.exists("stimuli")


def test_too_many_zip_members_are_refused(settings):
    settings.STIMULUS_IMPORT_MAX_FILES = 10
    members = {"t.csv": b"name,location\nx,f0.png\n", **{f"f{i}.png": b"p" for i in range(10)}}
    with pytest.raises(StimulusImportError, match="holds 11 files; the limit is 10"):
        import_stimuli(zip_bytes=_zip(members))


def test_oversized_table_in_the_zip_is_refused(settings):
    settings.STIMULUS_IMPORT_MAX_TABLE_BYTES = 1000
    with pytest.raises(StimulusImportError, match="larger than"):
        import_stimuli(zip_bytes=_zip({"t.csv": b"name,location\n" + b"x,y.png\n" * 200, "y.png": b"p"}))


def test_not_a_zip_is_a_clear_error():
    with pytest.raises(StimulusImportError, match="not a zip archive"):
        import_stimuli(zip_bytes=b"PK\x03\x04 garbage")


def test_five_thousand_rows_import_in_reasonable_time():
    for i in range(5):
        default_storage.save(f"stimuli/s{i}.png", ContentFile(b"p"))
    rows = "".join(f"s{i},stimuli/s{i % 5}.png,d,{i}\n" for i in range(5000))
    started = time.perf_counter()
    result = import_stimuli(table=f"name,location,description,attribute__n__double\n{rows}".encode())
    assert len(result.created) == 5000 and time.perf_counter() - started < 60


def _staff(*codenames, username="ed"):
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="runner", codename__in=codenames))
    return user


def test_import_page_needs_the_add_stimulus_permission(client):
    url = "/run/editor/stimuli/import/"
    client.force_login(_staff("view_stimulus"))
    upload = SimpleUploadedFile("t.zip", _zip({"t.csv": b"name,location\nx,x.png\n", "x.png": b"p"}))
    assert client.get(url).status_code == 403
    assert client.post(url, {"zip_file": upload}).status_code == 403
    assert not Stimulus.objects.exists()
    client.force_login(_staff("add_stimulus", username="ed2"))
    upload.seek(0)
    assert client.post(url, {"zip_file": upload}).status_code == 200
    assert Stimulus.objects.filter(name="x").exists()


def test_import_page_refuses_an_oversized_table(client, admin_user, settings):
    settings.STIMULUS_IMPORT_MAX_TABLE_BYTES = 100
    client.force_login(admin_user)
    table = SimpleUploadedFile("t.csv", b"name,location\n" + b"x,y.png\n" * 50)
    response = client.post("/run/editor/stimuli/import/", {"table": table})
    assert b"This file is too large (limit 0 MB)" in response.content and not Stimulus.objects.exists()


# ------------------------------------------------------------------ password file
def test_ensure_experimenter_tightens_a_readable_password_file(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("ensure_experimenter", stdout=StringIO(), stderr=StringIO())
    secret = tmp_path / "experimenter_password"
    os.chmod(secret, 0o644)
    err = StringIO()
    call_command("ensure_experimenter", stdout=StringIO(), stderr=err)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "was readable by others (mode 644); it is now 0600" in err.getvalue()
    assert not Session.objects.exists()


# ------------------------------------------------------------------ definition files
LAUGHS = (
    "slug: laughs\ntitle: x\nparams:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8))
    + "forms:\n  - name: end\n    handler: form_end_session\n"
)


@pytest.mark.parametrize(
    "text, message",
    [
        (LAUGHS, "expands to more than"),
        ("slug: x\ntitle: x\nparams: &p {self: *p}\nforms: []\n", "expands to more than|nests too deeply|malformed"),
        (
            "slug: x\ntitle: x\nparams: " + "[" * 5000 + "]" * 5000 + "\nforms: []\n",
            "nested too deeply|nests too deeply",
        ),
    ],
)
def test_hostile_yaml_is_refused_quickly(text, message):
    from runner.definitions.validate import validate_text

    started = time.perf_counter()
    definition, issues = validate_text(text)
    assert definition is None and any(re.search(message, i.message) for i in issues), issues
    assert time.perf_counter() - started < 10
