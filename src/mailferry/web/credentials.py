"""Who may use the web app: the admin password, API tokens and browser sessions.

Three tables of their own in the state database (application ``mailferry.web`` in ``meta``; their
definitions and queries are ``adapters.store.auth``, this module keeps the rules):

- ``web_admin``: one row, the admin password's scrypt hash with its parameters (``passwords``).
  ``mailferry admin init`` writes it; a login with a hash of an older, lower cost rewrites it.
- ``web_tokens``: API tokens (``mailferry token create NAME [--expires 30d]``) by the SHA-256 of
  the token. A token is 32 random bytes, so a fast hash is enough here; it is shown once and never
  stored. One with an expiry is refused from then on (and listed as expired until revoked).
- ``web_sessions``: browser sessions by the SHA-256 of the cookie value, with their CSRF token,
  absolute expiry and last activity (for the idle timeout). Stored, not signed, so that logging
  out or a new admin password ends them.

Nothing here ever returns a password, a token or a session id after it was handed out once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from mailferry import bootstrap
from mailferry.adapters.store.auth import AuthTables, SessionRow, TokenRow
from mailferry.config import Storage
from mailferry.domain.errors import ConfigError
from mailferry.service.batches import BatchService
from mailferry.web.passwords import OWASP, ScryptCost, check_password, hash_password, needs_rehash

MIN_PASSWORD = 12
TOKEN_PREFIX = "mft_"  # noqa: S105 - a prefix that makes leaked tokens easy to grep for
TOKEN_NAME_MAX = 64
TOUCH_EVERY = 10.0  # seconds: a session's last activity is written at most this often

Session = SessionRow
TokenInfo = TokenRow


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class AuthStore:
    """The admin password, tokens and sessions. ``cost``: the scrypt cost new hashes get (tests
    pass a low one explicitly); ``clock``: wall-clock seconds (tests move it)."""

    def __init__(
        self,
        tables: AuthTables,
        *,
        cost: ScryptCost = OWASP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tables = tables
        self.cost = cost
        self.clock = clock

    @classmethod
    def open_sqlite(
        cls, path: Path, *, cost: ScryptCost = OWASP, clock: Callable[[], float] = time.time
    ) -> AuthStore:
        return cls(bootstrap.open_auth_tables(path), cost=cost, clock=clock)

    @classmethod
    def open(
        cls, state: Storage, *, cost: ScryptCost = OWASP, clock: Callable[[], float] = time.time
    ) -> AuthStore:
        """The login tables where ``--state``/``--database`` put the state."""
        tables = bootstrap.open_auth_tables(state.state_path, state.database)
        return cls(tables, cost=cost, clock=clock)

    @classmethod
    def of_service(
        cls,
        service: BatchService,
        *,
        cost: ScryptCost = OWASP,
        clock: Callable[[], float] = time.time,
    ) -> AuthStore:
        """The login tables in the batch service's database (SQLite file or server)."""
        return cls(bootstrap.service_auth_tables(service), cost=cost, clock=clock)

    def close(self) -> None:
        self._tables.close()

    # -- the admin password ------------------------------------------------------------------------
    def set_admin_password(self, password: str) -> None:
        """Set (or change) the admin password; every browser session ends."""
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the admin password needs at least {MIN_PASSWORD} characters")
        self._tables.set_admin_hash(hash_password(password, self.cost), self.clock())

    def admin_configured(self) -> bool:
        return self._tables.admin_hash() is not None

    def check_admin(self, password: str) -> bool:
        """Check the password; a right one stored at a lower cost is hashed again at ours."""
        stored = self._tables.admin_hash()
        if stored is None or not check_password(password, stored):
            return False
        if needs_rehash(stored, self.cost):
            self._tables.replace_admin_hash(stored, hash_password(password, self.cost))
        return True

    def admin_hash(self) -> str | None:
        """The stored hash (parameters, salt, digest: no secret), for tests and diagnostics."""
        return self._tables.admin_hash()

    # -- API tokens --------------------------------------------------------------------------------
    def create_token(self, name: str, lifetime: float | None = None) -> str:
        """A new token, valid for ``lifetime`` seconds (None: until revoked); the only time it is
        ever seen is in this return value."""
        if not name or len(name) > TOKEN_NAME_MAX or not name.isprintable():
            raise ConfigError(f"token name {name!r}: 1-{TOKEN_NAME_MAX} printable characters")
        if lifetime is not None and lifetime <= 0:
            raise ConfigError("a token's lifetime must be positive")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        self._tables.add_token(
            name, _digest(token), now, None if lifetime is None else now + lifetime
        )
        return token

    def tokens(self) -> list[TokenInfo]:
        return self._tables.tokens()

    def revoke_token(self, name: str) -> bool:
        return self._tables.remove_token(name)

    def check_token(self, token: str) -> str | None:
        """The token's name if it is valid (known, and not expired)."""
        return self._tables.use_token(_digest(token), self.clock())

    # -- browser sessions --------------------------------------------------------------------------
    def open_session(self, lifetime: float) -> tuple[str, Session]:
        """A new session: the cookie value (returned once) and what is stored about it."""
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(_digest(cookie), secrets.token_urlsafe(32), now + lifetime)
        self._tables.add_session(session, now)
        return cookie, session

    def session(self, cookie: str, idle: float, *, touch: bool = True) -> Session | None:
        """The session, unless expired or idle for longer than ``idle`` seconds (then ended).
        ``touch``: this request is activity (the dashboard's own polling is not)."""
        touch_after = TOUCH_EVERY if touch else None
        return self._tables.use_session(_digest(cookie), self.clock(), idle, touch_after)

    def close_session(self, session: Session) -> None:
        self._tables.remove_session(session.digest)
