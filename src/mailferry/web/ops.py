"""Operations: ``/healthz`` for load balancers and supervisors, ``/metrics`` for Prometheus.

``/healthz`` needs no login and shows no secret: whether the state database answers, and whether
the scheduler's heartbeat in it is recent (the scheduler of this process when ``serve`` runs it,
else any live ``serve``). 200 when both hold, else 503; the body says which failed.

``/metrics`` needs an API token (``mailferry token create prometheus``; Prometheus sends it with
``authorization: {credentials_file: ...}``) or a session. Not open to loopback either: its labels
name batches and endpoints (often customers), and on a shared host every local user reaches
127.0.0.1. Counters come from ``adapters.metrics`` (fed by the scheduler); the mailboxes per
state are read from the database at each scrape, so they include other processes' work.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mailferry.domain.errors import StateError
from mailferry.service.batches import SERVICE_FRESH, BatchService
from mailferry.web.context import Web
from mailferry.web.security import api_caller, web_of

router = APIRouter(include_in_schema=False)


def health(web: Web) -> tuple[bool, dict[str, Any]]:
    try:
        beats = web.service.store.services()
    except StateError:
        return False, {"status": "unhealthy", "database": "unreachable", "scheduler": "unknown"}
    if web.scheduler_owner is not None:
        beats = [(owner, beat) for owner, beat in beats if owner == web.scheduler_owner]
    age = web.clock() - max(beat for _owner, beat in beats) if beats else None
    fresh = age is not None and age < SERVICE_FRESH
    body: dict[str, Any] = {
        "status": "ok" if fresh else "unhealthy",
        "database": "ok",
        "scheduler": "ok" if fresh else ("stale" if beats else "not running"),
        "heartbeat_age_seconds": None if age is None else round(age, 1),
    }
    return fresh, body


@router.get("/healthz")
def healthz(request: Request) -> Response:
    ok, body = health(web_of(request))
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", dependencies=[Depends(api_caller)])
def metrics(request: Request) -> Response:
    web = web_of(request)
    states = CollectorRegistry(auto_describe=False)
    states.register(MailboxStates(web.service))
    body = generate_latest(web.metrics.registry) + generate_latest(states)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class MailboxStates(Collector):
    """``mailferry_mailboxes{batch,source,target,state}``, read from the database per scrape."""

    def __init__(self, service: BatchService) -> None:
        self.service = service

    def collect(self) -> Any:
        family = GaugeMetricFamily(
            "mailferry_mailboxes",
            "Mailboxes per batch and state (queued: waiting for a slot or a scheduler).",
            labels=["batch", "source", "target", "state"],
        )
        for status in self.service.batches():
            route = [status.batch.name, status.batch.source, status.batch.target]
            for state, count in sorted(status.counts().items()):
                family.add_metric([*route, state], count)
        yield family
