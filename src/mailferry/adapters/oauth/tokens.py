"""Access tokens over grants: ``CachedToken`` keeps one until shortly before it expires, fetches one at
a time for every thread (a run's lanes share it), and fetches anew when the server refused it
(``force_refresh``). A grant is one round trip to an identity provider, or one run of a command."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailferry.domain.errors import AuthError

UNKNOWN_LIFETIME = 300.0  # seconds a token of unknown lifetime is reused (a refusal refreshes it)
REFRESH_MARGIN = 300.0  # refresh this long before expiry (at most half the token's lifetime)


@dataclass(frozen=True)
class Grant:
    """What one round trip to an identity provider returned."""

    access_token: str = field(repr=False)
    expires_in: float | None = None  # seconds; None when the source does not say


class GrantSource(Protocol):
    def __call__(self, force: bool) -> Grant:
        """Fetch a new token; ``force`` asks to bypass any cache the source keeps itself."""
        ...


class CachedToken:
    """A ``TokenProvider`` over a grant source: see the module docstring."""

    def __init__(
        self,
        fetch: GrantSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = REFRESH_MARGIN,
        unknown_lifetime: float = UNKNOWN_LIFETIME,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._unknown_lifetime = unknown_lifetime
        self._lock = threading.Lock()
        self._value: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0  # how many grants were made (tests, diagnostics)

    def __repr__(self) -> str:
        return f"CachedToken(fetches={self.fetches})"

    def token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or self._value is None or self._clock() >= self._refresh_at:
                started = self._clock()
                grant = self._fetch(force=force_refresh)
                if not grant.access_token:
                    raise AuthError("the token source returned an empty token")
                lifetime = grant.expires_in
                if lifetime is None:
                    lifetime = self._unknown_lifetime
                self._value = grant.access_token
                self._refresh_at = started + lifetime - min(self._margin, lifetime / 2)
                self.fetches += 1
            return self._value


def grant_from_json(data: Any, who: str) -> Grant:
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        raise AuthError(f"{who} answered without an access_token")
    expires = data.get("expires_in")
    try:
        lifetime = float(expires) if expires is not None else None
    except (TypeError, ValueError):
        lifetime = None
    return Grant(data["access_token"], lifetime)
