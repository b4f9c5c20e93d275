"""Who may use the web app: the admin password, API tokens and browser sessions.

Three tables of their own in the state database (application ``mailferry.web`` in ``meta``):

- ``web_admin``: one row, the admin password's scrypt hash with its parameters (``passwords``).
  ``mailferry admin init`` writes it; a login with a hash of an older, lower cost rewrites it.
- ``web_tokens``: API tokens (``mailferry token create NAME [--expires 30d]``) by the SHA-256 of
  the token. A token is 32 random bytes, so a fast hash is enough here; it is shown once and never
  stored. One with an expiry is refused from then on (and listed as expired until revoked).
- ``web_sessions``: browser sessions by the SHA-256 of the cookie value, with their CSRF token,
  absolute expiry and last activity (for the idle timeout). Stored, not signed, so that logging
  out or a new admin password ends them.

Columns added after the first release of schema 1 (``expires``, ``last_seen``) are nullable and
added to an older file when it is opened.

Nothing here ever returns a password, a token or a session id after it was handed out once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    URL,
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mailferry.adapters.sqlite_state import META, SqlStateStore, db_reason, ensure_component
from mailferry.domain.errors import ConfigError, StateError
from mailferry.web.passwords import OWASP, ScryptCost, check_password, hash_password, needs_rehash

APPLICATION = "mailferry.web"
SCHEMA_VERSION = 1
MIN_PASSWORD = 12
TOKEN_PREFIX = "mft_"  # noqa: S105 - a prefix that makes leaked tokens easy to grep for
TOKEN_NAME_MAX = 64
TOUCH_EVERY = 10.0  # seconds: a session's last activity is written at most this often

METADATA = MetaData()
_META = Table(
    META.name,
    METADATA,
    *(Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in META.c),
)
ADMIN = Table(
    "web_admin",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("password_hash", Text, nullable=False),
    Column("changed", Float, nullable=False),
)
TOKENS = Table(
    "web_tokens",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created", Float, nullable=False),
    Column("last_used", Float, nullable=True),
    Column("expires", Float, nullable=True),  # None: until revoked
)
SESSIONS = Table(
    "web_sessions",
    METADATA,
    Column("digest", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    Column("last_seen", Float, nullable=True),  # None in files from before the idle timeout
)
_OURS = (ADMIN, TOKENS, SESSIONS)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    digest: str
    csrf: str
    expires: float


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created: float
    last_used: float | None
    expires: float | None = None


class AuthStore:
    """The three tables; every method is one transaction. ``cost``: the scrypt cost new hashes
    get (tests pass a low one explicitly); ``clock``: wall-clock seconds (tests move it)."""

    def __init__(
        self,
        engine: Engine,
        where: str,
        *,
        cost: ScryptCost = OWASP,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._where = where
        self.cost = cost
        self.clock = clock
        try:
            with self._tx() as conn:
                self._check_or_create(conn)
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def open_sqlite(
        cls, path: Path, *, cost: ScryptCost = OWASP, clock: Callable[[], float] = time.time
    ) -> AuthStore:
        SqlStateStore.open_sqlite(path).close()  # recognises or creates the file (mode 0600)
        engine = create_engine(
            URL.create("sqlite+pysqlite", database=str(path)),
            connect_args={"timeout": 30},
        )
        return cls(engine, str(path), cost=cost, clock=clock)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateError(f"state database {self._where}: {db_reason(exc)}") from exc

    def _check_or_create(self, conn: Connection) -> None:
        ensure_component(
            conn,
            _META,
            application=APPLICATION,
            version=SCHEMA_VERSION,
            tables=_OURS,
            where=self._where,
            what="web",
        )
        _add_missing_columns(conn)

    # -- the admin password ------------------------------------------------------------------------
    def set_admin_password(self, password: str) -> None:
        """Set (or change) the admin password; every browser session ends."""
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the admin password needs at least {MIN_PASSWORD} characters")
        stored = hash_password(password, self.cost)
        with self._tx() as conn:
            conn.execute(delete(ADMIN))
            conn.execute(
                ADMIN.insert(), {"id": 1, "password_hash": stored, "changed": self.clock()}
            )
            conn.execute(delete(SESSIONS))

    def admin_configured(self) -> bool:
        with self._tx() as conn:
            return conn.scalar(select(ADMIN.c.id)) is not None

    def check_admin(self, password: str) -> bool:
        """Check the password; a right one stored at a lower cost is hashed again at ours."""
        with self._tx() as conn:
            stored = conn.scalar(select(ADMIN.c.password_hash))
        if stored is None or not check_password(password, stored):
            return False
        if needs_rehash(stored, self.cost):
            rehashed = hash_password(password, self.cost)
            with self._tx() as conn:  # only if nobody changed it meanwhile; sessions stay
                conn.execute(
                    update(ADMIN)
                    .where(ADMIN.c.password_hash == stored)
                    .values(password_hash=rehashed)
                )
        return True

    def admin_hash(self) -> str | None:
        """The stored hash (parameters, salt, digest: no secret), for tests and diagnostics."""
        with self._tx() as conn:
            return conn.scalar(select(ADMIN.c.password_hash))

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
        row = {
            "name": name,
            "digest": _digest(token),
            "created": now,
            "expires": None if lifetime is None else now + lifetime,
        }
        try:
            with self._tx() as conn:
                conn.execute(TOKENS.insert(), row)
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConfigError(f"token {name!r} exists already") from None
            raise
        return token

    def tokens(self) -> list[TokenInfo]:
        columns = (TOKENS.c.name, TOKENS.c.created, TOKENS.c.last_used, TOKENS.c.expires)
        with self._tx() as conn:
            rows = conn.execute(select(*columns).order_by(TOKENS.c.name)).all()
        return [TokenInfo(r.name, r.created, r.last_used, r.expires) for r in rows]

    def revoke_token(self, name: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(delete(TOKENS).where(TOKENS.c.name == name)).rowcount)

    def check_token(self, token: str) -> str | None:
        """The token's name if it is valid (known, and not expired)."""
        digest = _digest(token)
        now = self.clock()
        with self._tx() as conn:
            row = conn.execute(
                select(TOKENS.c.name, TOKENS.c.expires).where(TOKENS.c.digest == digest)
            ).one_or_none()
            if row is None or (row.expires is not None and row.expires <= now):
                return None
            conn.execute(update(TOKENS).where(TOKENS.c.name == row.name).values(last_used=now))
        return str(row.name)

    # -- browser sessions --------------------------------------------------------------------------
    def open_session(self, lifetime: float) -> tuple[str, Session]:
        """A new session: the cookie value (returned once) and what is stored about it."""
        cookie = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(_digest(cookie), secrets.token_urlsafe(32), now + lifetime)
        with self._tx() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.expires < now))
            conn.execute(
                SESSIONS.insert(),
                {
                    "digest": session.digest,
                    "csrf": session.csrf,
                    "created": now,
                    "expires": session.expires,
                    "last_seen": now,
                },
            )
        return cookie, session

    def session(self, cookie: str, idle: float, *, touch: bool = True) -> Session | None:
        """The session, unless expired or idle for longer than ``idle`` seconds (then ended).
        ``touch``: this request is activity (the dashboard's own polling is not)."""
        now = self.clock()
        with self._tx() as conn:
            row = conn.execute(
                select(SESSIONS).where(SESSIONS.c.digest == _digest(cookie))
            ).one_or_none()
            if row is None:
                return None
            seen = row.last_seen if row.last_seen is not None else row.created
            if row.expires < now or seen + idle < now:
                conn.execute(delete(SESSIONS).where(SESSIONS.c.digest == row.digest))
                return None
            if touch and now - seen >= TOUCH_EVERY:
                conn.execute(
                    update(SESSIONS).where(SESSIONS.c.digest == row.digest).values(last_seen=now)
                )
        return Session(row.digest, row.csrf, row.expires)

    def close_session(self, session: Session) -> None:
        with self._tx() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.digest == session.digest))


def _add_missing_columns(conn: Connection) -> None:
    """Columns added after the first release of schema 1 (all nullable): a file made before them
    gets them here, and its old rows read as None."""
    for table in (TOKENS, SESSIONS):
        have = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")
