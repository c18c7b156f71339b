"""Channel-layer group names: the one place they are spelled."""

from __future__ import annotations


def group_session_group(group_session_id: int) -> str:
    """Every socket (participants and experimenters) of one group session."""
    return f"groupsession.{int(group_session_id)}"
