"""Pseudonyms: test vectors, alphabet and length, study scope, collision check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from django.test import override_settings

from exports import pseudonyms
from exports.pseudonyms import PseudonymCollision, PseudonymMap, pseudonym, scope_for
from exports.selectors import ExportFilters
from exports.services import ExportError, build_pseudonyms
from runner.models import Study, StudyXExperiment
from tests.factories import ExperimentFactory, SessionFactory, SubjectFactory

KEY = "test-vector-key"
VECTORS = [
    ("study:warmth", "00000000-0000-4000-8000-00000000a001", "WK1HZVFBKWHPMY8H"),
    ("study:warmth", "6f1c2a9e-3b7d-4c21-9a5e-1d2b3c4d5e6f", "CX1RNC8SHGTRGK62"),
    ("experiment:golden-solo", "00000000-0000-4000-8000-00000000a001", "H3FJ7FK15BWP7RZG"),
    ("experiment:golden-solo", "6f1c2a9e-3b7d-4c21-9a5e-1d2b3c4d5e6f", "1JY9HRKXQQ6250B5"),
    ("experiment:other", "00000000-0000-4000-8000-00000000a001", "0R1SM44WQH943SJT"),
]
RFC_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")


@pytest.mark.parametrize(("scope", "subject", "expected"), VECTORS)
def test_vectors(scope, subject, expected):
    assert pseudonym(subject, scope, key=KEY) == expected
    # The same value computed independently: HMAC-SHA256, first 80 bits, Crockford base 32.
    digest = hmac.new(KEY.encode(), f"{scope}\x00{subject}".encode(), hashlib.sha256).digest()
    assert base64.b32encode(digest[:10]).decode().translate(RFC_TO_CROCKFORD) == expected


def test_key_comes_from_settings():
    with override_settings(PSEUDONYM_KEY=KEY):
        assert pseudonym(VECTORS[0][1], VECTORS[0][0]) == VECTORS[0][2]
    with override_settings(PSEUDONYM_KEY="another key"):
        assert pseudonym(VECTORS[0][1], VECTORS[0][0]) != VECTORS[0][2]


def test_shape():
    value = pseudonym("x", "experiment:y", key=KEY)
    assert len(value) == 16 >= 10
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{16}", value)


@pytest.mark.django_db
def test_scope_is_the_study_when_there_is_one():
    a, b, c = ExperimentFactory(slug="part-a"), ExperimentFactory(slug="part-b"), ExperimentFactory(slug="solo")
    study = Study.objects.create(slug="warmth", title="Warmth")
    other = Study.objects.create(slug="other-study", title="Other")
    StudyXExperiment.objects.create(study=study, experiment=a, order=1)
    StudyXExperiment.objects.create(study=study, experiment=b, order=2)
    assert scope_for(a) == scope_for(b) == "study:warmth"
    assert scope_for(c) == "experiment:solo"
    subject = SubjectFactory()
    same = {PseudonymMap(scope_for(e), key=KEY).get(subject.id, 1) for e in (a, b)}
    assert len(same) == 1
    assert PseudonymMap(scope_for(c), key=KEY).get(subject.id, 1) not in same
    d = ExperimentFactory(slug="part-d")
    StudyXExperiment.objects.create(study=other, experiment=d, order=1)
    assert PseudonymMap(scope_for(d), key=KEY).get(subject.id, 1) not in same


def test_sessions_without_subject_get_their_own_pseudonym():
    m = PseudonymMap("experiment:x", key=KEY)
    assert m.get(None, 7) == pseudonym("session-7", "experiment:x", key=KEY)
    assert m.get(None, 7) != m.get(None, 8)


def test_collision_is_an_error(monkeypatch):
    monkeypatch.setattr(pseudonyms, "pseudonym", lambda *a, **k: "SAMEVALUE0000000")
    m = PseudonymMap("experiment:x")
    m.add("subject-1", 1)
    assert m.add("subject-1", 2) == "SAMEVALUE0000000"  # the same subject again is fine
    with pytest.raises(PseudonymCollision):
        m.add("subject-2", 3)


@pytest.mark.django_db
def test_collision_check_runs_at_every_export(monkeypatch):
    exp = ExperimentFactory()
    SessionFactory(experiment=exp)
    SessionFactory(experiment=exp)
    monkeypatch.setattr(pseudonyms, "pseudonym", lambda *a, **k: "SAMEVALUE0000000")
    with pytest.raises(ExportError) as info:
        build_pseudonyms(experiment=exp, filters=ExportFilters())
    assert info.value.code == "pseudonym_collision"
