"""How the service reports progress: a port the CLI (and later the web) implements."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None: ...

    def advanced(self, messages: int, nbytes: int) -> None: ...

    def folder_advanced(self, source: str, messages: int) -> None: ...

    def folder_finished(self, source: str) -> None: ...

    def paused(self, reason: str, seconds: float) -> None:
        """The run waits ``seconds`` for a provider's daily cap to lift (``reason``: its words)."""
        ...


class NoProgress:
    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None:
        pass

    def advanced(self, messages: int, nbytes: int) -> None:
        pass

    def folder_advanced(self, source: str, messages: int) -> None:
        pass

    def folder_finished(self, source: str) -> None:
        pass

    def paused(self, reason: str, seconds: float) -> None:
        pass
