"""Pre-serialised group-state frames: what one PUBLISH carries, and what each receiver
class (the experimenter, every participant) is sent.

The domain builds the payloads (``groups.store.wire_body``) and hands them over as
text; this module only encodes and decodes the wire form and assembles a participant's
frame from the shared part and that participant's row."""

from __future__ import annotations

import json

#: The status a participant missing from a snapshot is shown with (removed: SPEC 5).
ABSENT_STATUS = "kicked"

# one encoder, not one per call; never NaN or Infinity (browsers cannot parse them): ValueError
dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_string = json.encoder.encode_basestring_ascii  # a JSON string literal (C), as json.dumps writes it


def me_row(pseudonym: str, status: str, responded_step: int | None) -> str:
    """``{"id":..,"status":..,"responded_step":..}`` exactly as ``dumps`` writes it, at
    a fraction of its cost (one per participant per change)."""
    responded = "null" if responded_step is None else int(responded_step)
    return f'{{"id":{_string(pseudonym)},"status":{_string(status)},"responded_step":{responded}}}'


def encode(version: int, participant_version: int, shared: dict, rows: list[tuple[str, str, int | None]],
           experimenter: dict | None) -> str:  # fmt: skip
    """The wire form of one snapshot, from the participants' ``shared`` part, each
    participant's row ``(pseudonym, status, responded_step)`` and the ``experimenter``'s
    view: four lines, so that a hub never parses the whole state: ``<version>
    <participant_version>``, the shared part (a JSON object without its closing brace),
    a JSON object ``{pseudonym: [status, "<that participant's me row as JSON>"]}``, and
    the experimenter's text. JSON text holds no raw newline, so the lines split
    unambiguously. ``experimenter`` None: an empty last line, the console's view of this
    version follows as a ``console_body`` (the participants' part goes out first)."""
    me = {pid: [status, me_row(pid, status, responded)] for pid, status, responded in rows}
    console = "" if experimenter is None else dumps(experimenter)
    return f"{int(version)} {int(participant_version)}\n{dumps(shared)[:-1]}\n{dumps(me)}\n{console}"


CONSOLE = "console "  # how the body of a console-only message begins (a snapshot's begins with a digit)


def console_body(version: int, experimenter: dict) -> str:
    """The experimenter's view of snapshot ``version``, published after that snapshot went
    out with an empty one (``encode``): ``console <version>`` and the view's JSON."""
    return f"{CONSOLE}{int(version)}\n{dumps(experimenter)}"


def decode_console(body: str) -> tuple[int, str]:
    """``(version, experimenter text)`` of a ``console_body``."""
    head, _, text = body.partition("\n")
    return int(head.removeprefix(CONSOLE)), text


class Frames:
    """One snapshot, pre-serialised: ``experimenter`` text, and ``participant(id)``
    built from the shared part (encoded once) plus that participant's own row (also
    encoded once, by the process that published it)."""

    __slots__ = (
        "group_session",
        "version",
        "participant_version",
        "experimenter",
        "_shared",
        "_me",
        "_where",
        "content",
    )

    def __init__(self, group_session: int, version: int, participant_version: int, experimenter: str, shared: str,
                 me: dict):  # fmt: skip
        self.group_session, self.version, self.participant_version = group_session, version, participant_version
        self.experimenter, self._shared, self._me = experimenter, shared, me
        self._where = None
        # (step, its content future or None[, its frame]): ``realtime.live``'s memo, once per snapshot
        self.content = None

    @classmethod
    def decode(cls, group_session: int, body: str) -> Frames:
        head, shared, me, experimenter = body.split("\n", 3)
        version, participant_version = head.split(" ")
        return cls(int(group_session), int(version), int(participant_version), experimenter, shared, json.loads(me))

    def where(self) -> tuple[str, int]:
        """``(phase, step)`` of this snapshot (parsed once per snapshot and process)."""
        if self._where is None:
            shared = json.loads(self._shared + "}")
            self._where = (shared["phase"], shared["step"])
        return self._where

    @property
    def console_pending(self) -> bool:
        """The experimenter's view of this snapshot has not come yet (``console_body``)."""
        return not self.experimenter

    def knows(self, pseudonym: str) -> bool:
        return pseudonym in self._me

    def status_of(self, pseudonym: str) -> str:
        mine = self._me.get(pseudonym)
        return ABSENT_STATUS if mine is None else mine[0]

    def participant(self, pseudonym: str) -> str:
        mine = self._me.get(pseudonym)
        if mine is None:  # removed from the group since: shown as such
            me = me_row(pseudonym, ABSENT_STATUS, None)
        else:
            me = mine[1]
        return f'{self._shared},"me":{me}}}'
