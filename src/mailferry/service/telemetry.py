"""What the scheduler tells the outside about finished mailbox passes: a port, so that the service
does not know Prometheus (``adapters.metrics`` implements it; ``NoTelemetry`` does nothing)."""

from __future__ import annotations

from typing import Protocol

from mailferry.domain.model import Summary


class Telemetry(Protocol):
    def pass_finished(self, source: str, target: str, outcome: str, summary: Summary) -> None:
        """One mailbox pass from endpoint ``source`` to ``target`` ended in state ``outcome``
        (its counts in ``summary``; an empty one when it failed before copying)."""
        ...


class NoTelemetry:
    def pass_finished(self, source: str, target: str, outcome: str, summary: Summary) -> None:
        pass
