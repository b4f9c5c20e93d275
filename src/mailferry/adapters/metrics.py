"""Prometheus counters fed by the scheduler (the ``Telemetry`` port), in a registry of their own.

Counted when a mailbox pass ends, from its summary: exact (what was confirmed copied, not what
was attempted), at the price of moving in steps of one pass. Live progress of a running pass is in
the dashboard and in the scrape-time gauges of ``web.ops`` (mailboxes per state). Labels are
endpoint names (``source``, ``target``), never users or addresses: bounded, and not personal.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from mailferry.domain.model import Summary

ROUTE = ("source", "target")


class PrometheusTelemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, what: str, labels: tuple[str, ...] = ROUTE) -> Counter:
            return Counter(name, what, labels, registry=self.registry)

        self.messages = counter("mailferry_messages_copied", "Messages copied to the target.")
        self.bytes = counter("mailferry_bytes_copied", "Bytes of messages copied.")
        self.failures = counter("mailferry_messages_failed", "Messages that failed to copy.")
        self.throttles = counter(
            "mailferry_throttles", "Times a server asked to slow down (incl. daily-cap pauses)."
        )
        self.reconnects = counter("mailferry_reconnects", "Reconnects after lost connections.")
        self.passes = counter(
            "mailferry_mailbox_passes", "Mailbox passes ended, by outcome.", (*ROUTE, "outcome")
        )

    def pass_finished(self, source: str, target: str, outcome: str, summary: Summary) -> None:
        route = {"source": source, "target": target}
        self.messages.labels(**route).inc(summary.messages_copied)
        self.bytes.labels(**route).inc(summary.bytes_copied)
        self.failures.labels(**route).inc(summary.messages_failed)
        self.throttles.labels(**route).inc(summary.throttled + summary.cap_pauses)
        self.reconnects.labels(**route).inc(summary.reconnects)
        self.passes.labels(**route, outcome=outcome).inc()
