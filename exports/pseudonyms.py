"""Study-specific participant pseudonyms (SPEC section 6).

``pseudonym = Crockford-base32(HMAC-SHA256(PSEUDONYM_KEY, scope || 0x00 || subject id)[:10])``:
16 characters (80 bits). ``PSEUDONYM_KEY`` lives outside the database, so a database dump
alone cannot link pseudonyms back to subjects. The scope is ``study:<slug>`` when the
experiment belongs to a study (the same person gets the same pseudonym across the study's
experiments) and ``experiment:<slug>`` otherwise; different scopes give unrelated pseudonyms.
An experiment in several studies uses the study with the smallest id.
A session without a subject is pseudonymised from ``session-<id>``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PSEUDONYM_LENGTH = 16


class PseudonymCollision(Exception):
    """Two different subjects got the same pseudonym in one export."""

    def __init__(self, pseudonym: str, first: str, second: str):
        self.pseudonym = pseudonym
        super().__init__(
            f"pseudonym collision: {pseudonym} is shared by two subjects; change PSEUDONYM_KEY "
            "scope or report this (it should happen about once in 10^24 pairs)"
        )
        self.subjects = (first, second)


def crockford32(data: bytes, length: int = PSEUDONYM_LENGTH) -> str:
    """The first ``length`` Crockford base-32 characters of ``data`` (big-endian bits)."""
    number = int.from_bytes(data, "big")
    bits = len(data) * 8
    if length * 5 > bits:
        raise ValueError("not enough bytes for that many characters")
    out = []
    for i in range(length):
        shift = bits - 5 * (i + 1)
        out.append(CROCKFORD[(number >> shift) & 31])
    return "".join(out)


def pseudonym(subject_key: str, scope: str, *, key: str | None = None) -> str:
    """The pseudonym of ``subject_key`` (a subject uuid, as text) within ``scope``."""
    secret = str(key if key is not None else settings.PSEUDONYM_KEY).encode()
    digest = hmac.new(secret, scope.encode() + b"\x00" + str(subject_key).encode(), hashlib.sha256).digest()
    return crockford32(digest[:10])


def scope_for(experiment) -> str:
    """``study:<slug>`` for an experiment in a study, else ``experiment:<slug>``."""
    from runner.models import StudyXExperiment

    link = StudyXExperiment.objects.filter(experiment=experiment).select_related("study").order_by("study_id").first()
    if link is not None:
        return f"study:{link.study.slug}"
    return f"experiment:{experiment.slug}"


def subject_key(subject_id, session_id) -> str:
    """What a session's pseudonym is computed from: its subject, or the session itself."""
    return str(subject_id) if subject_id is not None else f"session-{session_id}"


class PseudonymMap:
    """Pseudonyms for one export, with the collision check the SPEC asks for.

    Call :meth:`add` for every (subject, session) exported; it raises
    :class:`PseudonymCollision` when two different subjects map to one pseudonym.
    """

    def __init__(self, scope: str, *, key: str | None = None):
        self.scope = scope
        self.key = key
        self._by_subject: dict[str, str] = {}
        self._owner: dict[str, str] = {}

    def add(self, subject_id, session_id) -> str:
        skey = subject_key(subject_id, session_id)
        known = self._by_subject.get(skey)
        if known is not None:
            return known
        value = pseudonym(skey, self.scope, key=self.key)
        owner = self._owner.get(value)
        if owner is not None and owner != skey:
            raise PseudonymCollision(value, owner, skey)
        self._owner[value] = skey
        self._by_subject[skey] = value
        return value

    def add_all(self, pairs: Iterable[tuple]) -> None:
        for subject_id, session_id in pairs:
            self.add(subject_id, session_id)

    def get(self, subject_id, session_id) -> str:
        return self.add(subject_id, session_id)

    def __len__(self) -> int:
        return len(self._by_subject)
