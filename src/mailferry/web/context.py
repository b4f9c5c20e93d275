"""What every request handler reaches through ``request.app.state.web``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi.templating import Jinja2Templates

from mailferry.adapters.metrics import PrometheusTelemetry
from mailferry.service.batches import BatchService
from mailferry.web.credentials import AuthStore
from mailferry.web.settings import WebSettings
from mailferry.web.throttle import LoginThrottle


@dataclass(frozen=True)
class Web:
    service: BatchService
    settings: WebSettings
    auth: AuthStore
    templates: Jinja2Templates
    throttle: LoginThrottle
    metrics: PrometheusTelemetry
    clock: Callable[[], float]  # wall-clock seconds; tests pass their own
    scheduler_owner: str | None = None  # the scheduler in this process (``serve``), if any

    def close(self) -> None:
        self.auth.close()
