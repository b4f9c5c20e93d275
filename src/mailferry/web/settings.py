"""The web app's settings: typed, frozen, passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailferry.web.passwords import OWASP, ScryptCost
from mailferry.web.throttle import ThrottlePolicy


@dataclass(frozen=True)
class WebSettings:
    secure_cookies: bool = False  # True when served over TLS (``serve --tls-cert``): also HSTS
    session_hours: float = 12.0  # absolute lifetime of a browser session
    idle_minutes: float = 30.0  # a session unused this long ends (``serve --idle-timeout``)
    poll_seconds: float = 2.0  # how often the batch page refreshes its live part
    max_upload_bytes: int = 10 * 1024 * 1024 + 64 * 1024  # the CSV limit, plus form overhead
    test_timeout: float = 20.0  # seconds for "test connection"
    allowed_hosts: tuple[str, ...] = ()  # Host names beyond loopback (see ``web.hosts``)
    files_roots: tuple[Path, ...] = ()  # where file endpoints may be set (``serve --files-root``)
    password_cost: ScryptCost = OWASP  # tests pass a lower one explicitly
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)

    @property
    def session_seconds(self) -> int:
        return int(self.session_hours * 3600)

    @property
    def idle_seconds(self) -> float:
        return self.idle_minutes * 60
