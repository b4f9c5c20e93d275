"""The web app's settings: typed, frozen, passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WebSettings:
    secure_cookies: bool = False  # True when served over TLS (``serve --tls-cert``)
    session_hours: float = 12.0
    poll_seconds: float = 2.0  # how often the batch page refreshes its live part
    max_upload_bytes: int = 10 * 1024 * 1024 + 64 * 1024  # the CSV limit, plus form overhead
    test_timeout: float = 20.0  # seconds for "test connection"

    @property
    def session_seconds(self) -> int:
        return int(self.session_hours * 3600)
