"""Stimulus import: zip + CSV, CSV alone, all-or-nothing with row numbers, editor page."""

import io
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from runner.models import Attribute, ExperimentXStimulus, Stimulus, StimulusXAttribute
from runner.stimulus_import import StimulusImportError, import_stimuli

from .builders import build_experiment

pytestmark = pytest.mark.django_db

TABLE = (
    "name,location,description,attribute__audio_type__text,attribute__tempo__double\n"
    "jingle1,jingle1.mp3,First,jingle,120\n"
    "jingle2,sub/jingle2.mp3,,slogan,96.5\n"
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def _zip(table=TABLE, files=("jingle1.mp3", "sub/jingle2.mp3")):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("stimuli.csv", table)
        for name in files:
            archive.writestr(name, b"ID3 fake audio " + name.encode())
    return buf.getvalue()


def test_zip_with_table_imports_files_and_attributes():
    experiment = build_experiment([])
    result = import_stimuli(zip_bytes=_zip(), experiment=experiment)
    assert [s.name for s in result.created] == ["jingle1", "jingle2"] and result.files_stored == 2
    jingle = Stimulus.objects.get(name="jingle1")
    assert jingle.description == "First" and jingle.file_format == "mp3"
    assert default_storage.open(jingle.location.name).read().startswith(b"ID3 fake audio")
    tempo = StimulusXAttribute.objects.get(stimulus__name="jingle2", attribute__name="tempo")
    assert tempo.value_double == 96.5 and tempo.attribute.attribute_type == "double"
    assert StimulusXAttribute.objects.get(stimulus=jingle, attribute__name="audio_type").value_text == "jingle"
    assert ExperimentXStimulus.objects.filter(experiment=experiment).count() == 2


def test_one_bad_row_imports_nothing_and_names_the_row():
    table = TABLE + "jingle3,missing.mp3,,jingle,fast\n"
    with pytest.raises(StimulusImportError) as info:
        import_stimuli(zip_bytes=_zip(table))
    messages = [str(e) for e in info.value.errors]
    assert "row 4: file 'missing.mp3' is not in the zip" in messages
    assert "row 4: attribute__tempo__double value 'fast' is not a number" in messages
    assert not Stimulus.objects.exists() and not Attribute.objects.exists()
    assert not default_storage.exists("stimuli") or not default_storage.listdir("stimuli")[1]


def test_csv_alone_for_files_already_in_storage():
    default_storage.save("stimuli/already.wav", ContentFile(b"RIFF"))
    result = import_stimuli(table=b"name,location\nalready,stimuli/already.wav\n")
    assert result.files_stored == 0
    assert Stimulus.objects.get(name="already").location.name == "stimuli/already.wav"
    with pytest.raises(StimulusImportError) as info:
        import_stimuli(table=b"name,location\nghost,stimuli/ghost.wav\n")
    assert str(info.value.errors[0]) == "row 2: file 'stimuli/ghost.wav' is not in storage"


def test_header_and_duplicate_errors():
    with pytest.raises(StimulusImportError) as info:
        import_stimuli(table=b"title,location,attribute__x\n")
    text = " ".join(str(e) for e in info.value.errors)
    assert "missing required column 'name'" in text and "unknown column 'attribute__x'" in text
    Stimulus.objects.create(name="jingle1")
    with pytest.raises(StimulusImportError) as info:
        import_stimuli(zip_bytes=_zip(TABLE + "jingle2,jingle1.mp3,,,\n"))
    text = [str(e) for e in info.value.errors]
    assert "row 2: a stimulus named 'jingle1' already exists" in text
    assert "row 4: name 'jingle2' repeats row 3" in text


def test_not_a_zip():
    with pytest.raises(StimulusImportError, match="not a zip"):
        import_stimuli(zip_bytes=b"plain text")


def test_editor_page_is_staff_only_and_lists_errors(client, admin_client):
    url = "/run/editor/stimuli/import/"
    assert client.get(url).status_code == 302  # to the login page
    assert admin_client.get(url).status_code == 200
    bad = io.BytesIO(_zip(TABLE + "x,nowhere.mp3,,,\n"))
    bad.name = "stim.zip"
    response = admin_client.post(url, {"zip_file": bad})
    assert response.status_code == 400
    assert b"row 4: file" in response.content and b"Nothing was imported" in response.content
    good = io.BytesIO(_zip())
    good.name = "stim.zip"
    response = admin_client.post(url, {"zip_file": good})
    assert response.status_code == 200 and b"Imported 2 stimuli" in response.content
