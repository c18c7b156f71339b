"""What ``realtime`` asks of the domain, registered once at start-up.

``realtime`` imports no domain app: the app that owns group sessions (``groups``)
registers these callbacks from its ``AppConfig.ready()``, and the sockets, the hub and
the lease sweeper call them. Every callback is synchronous (called through
``database_sync_to_async`` where it touches the database). Refusals are raised as
``project.core.errors.CodedError`` (their ``code`` goes to the client as is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: The name under which a process counts the experimenter sockets (consoles) it holds in
#: ``record_presence``'s ``held``, beside the participants' pseudonyms (which never
#: start with "@"): a console is open while some live process counts one.
CONSOLE = "@console"


@dataclass(frozen=True)
class GroupPorts:
    #: group session id -> the current snapshot's wire form (``realtime.frames.encode``)
    read_body: Callable[[int], str]
    #: [(group session id, cookies)] -> one identity (``.pseudonym``) or CodedError each
    authenticate_participants: Callable[[list[tuple[int, dict]]], list]
    #: (group_session_id=, user=) -> the group session id, or raises CodedError
    authenticate_experimenter: Callable[..., int]
    #: experimenter message type -> service(group_session=, by=, **fields)
    commands: Mapping[str, Callable[..., object]]
    #: (group_session=, steps={pseudonym: step}): these participants are on the waiting
    #: screen (one change; steps the state machine refuses, e.g. stale, are skipped)
    participants_ready: Callable[..., object]
    #: (phase, current step, step): raises CodedError as the state machine refuses a ``ready``
    #: for ``step`` in a state at that phase and step (``stale_step``, ``ended``)
    check_ready: Callable[[str, int, int], None]
    #: (group_session=, acks=, process=, held=, retired=) -> the new version or None
    record_presence: Callable[..., int | None]
    #: (group_session=, acks=) -> the new version or None
    record_acks: Callable[..., int | None]
    #: (besides=) -> the server processes with connections counted
    counting_processes: Callable[..., set[str]]
    #: (dead=) -> the group sessions whose counts of ``dead`` processes were taken off
    sweep_processes: Callable[..., list[int]]
    #: The live page (docs/groups.md, "The live page"):
    #: (group session id, step) -> the step's ``group.content`` frame text, or None
    step_content: Callable[[int, int], str | None] | None = None
    #: (group session id, step) -> the text this process built when it published the step;
    #: KeyError when it did not
    prebuilt_content: Callable[[int, int], str | None] | None = None
    #: (group_session=, onsets=, locations=, errors=) -> the new version or None
    record_reports: Callable[..., int | None] | None = None


_registered: GroupPorts | None = None


def register(ports: GroupPorts) -> None:
    global _registered
    _registered = ports


def group() -> GroupPorts:
    if _registered is None:
        raise RuntimeError("No group ports registered: is the groups app in INSTALLED_APPS?")
    return _registered
