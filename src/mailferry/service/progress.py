"""How the service reports progress: a port the CLI (and later the web) implements."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None: ...

    def advanced(self, messages: int, nbytes: int) -> None: ...

    def folder_advanced(self, source: str, messages: int) -> None: ...

    def folder_finished(self, source: str) -> None: ...


class NoProgress:
    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None:
        pass

    def advanced(self, messages: int, nbytes: int) -> None:
        pass

    def folder_advanced(self, source: str, messages: int) -> None:
        pass

    def folder_finished(self, source: str) -> None:
        pass
