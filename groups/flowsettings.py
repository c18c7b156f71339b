"""Flow-control settings of a group session (issue 20), from the definition: a
``group_trial`` form's ``StepFlow`` (``ExperimentXForm.flow``), the experiment's
``DropoutPolicy`` and ``LobbyPolicy`` (``Experiment.dropout`` / ``.lobby``). Pure."""

from __future__ import annotations

from dataclasses import dataclass


def ms(seconds) -> int:
    """Seconds (int or float) as whole milliseconds."""
    return int(round(float(seconds) * 1000))


@dataclass(frozen=True)
class StepFlow:
    """A ``group_trial`` form's timer and auto-advance."""

    timeout_ms: int | None = None
    on_timeout: str = "submit"
    auto_advance: str = "experimenter"
    delay_ms: int = 0

    @classmethod
    def from_definition(cls, flow: dict | None) -> StepFlow:
        flow = flow or {}
        timeout = flow.get("timeout_seconds")
        return cls(
            timeout_ms=None if timeout is None else ms(timeout),
            on_timeout=flow.get("on_timeout", "submit"),
            auto_advance=flow.get("auto_advance", "experimenter"),
            delay_ms=ms(flow.get("auto_advance_delay_seconds", 0)),
        )

    def deadline(self, starts_at_ms: int) -> int | None:
        """When the step that is revealed at ``starts_at_ms`` times out."""
        return None if self.timeout_ms is None else starts_at_ms + self.timeout_ms


@dataclass(frozen=True)
class DropoutPolicy:
    after_ms: int
    policy: str = "continue"

    @classmethod
    def from_definition(cls, dropout: dict | None) -> DropoutPolicy | None:
        if not dropout:
            return None
        return cls(after_ms=ms(dropout["after_seconds"]), policy=dropout.get("policy", "continue"))


@dataclass(frozen=True)
class LobbyPolicy:
    min_size: int
    max_size: int
    wait_ms: int
    release_code: str = ""

    @classmethod
    def from_definition(cls, lobby: dict | None) -> LobbyPolicy | None:
        if not lobby:
            return None
        return cls(
            min_size=lobby["min_size"],
            max_size=lobby.get("max_size", lobby["min_size"]),
            wait_ms=ms(lobby["wait_seconds"]),
            release_code=lobby.get("release_completion_code", ""),
        )
