"""Who may use the web app: the admin password, API tokens and browser sessions.

Three tables of their own in the state database (application ``mailferry.web`` in ``meta``):

- ``web_admin``: one row, the admin password as ``scrypt$N$r$p$salt$hash`` (RFC 7914; the salt
  and hash url-safe base64). ``mailferry admin init`` writes it.
- ``web_tokens``: API tokens (``mailferry token create NAME``) by the SHA-256 of the token. A
  token is 32 random bytes, so a fast hash is enough here; it is shown once and never stored.
- ``web_sessions``: browser sessions by the SHA-256 of the cookie value, with their CSRF token
  and expiry. Stored, not signed, so that logging out or a new admin password ends them.

Nothing here ever returns a password, a token or a session id after it was handed out once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
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
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mailferry.adapters.sqlite_state import META, SqlStateStore, db_reason, ensure_component
from mailferry.domain.errors import ConfigError, StateError

APPLICATION = "mailferry.web"
SCHEMA_VERSION = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1  # ~50 ms and 32 MiB per check
SCRYPT_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 12
TOKEN_PREFIX = "mft_"  # noqa: S105 - a prefix that makes leaked tokens easy to grep for
TOKEN_NAME_MAX = 64

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
)
SESSIONS = Table(
    "web_sessions",
    METADATA,
    Column("digest", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
)
_OURS = (ADMIN, TOKENS, SESSIONS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        found = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


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


class AuthStore:
    """The three tables; every method is one transaction."""

    def __init__(self, engine: Engine, where: str) -> None:
        self._engine = engine
        self._where = where
        try:
            with self._tx() as conn:
                self._check_or_create(conn)
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def open_sqlite(cls, path: Path) -> AuthStore:
        SqlStateStore.open_sqlite(path).close()  # recognises or creates the file (mode 0600)
        engine = create_engine(
            URL.create("sqlite+pysqlite", database=str(path)),
            connect_args={"timeout": 30},
        )
        return cls(engine, str(path))

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

    # -- the admin password ------------------------------------------------------------------------
    def set_admin_password(self, password: str) -> None:
        """Set (or change) the admin password; every browser session ends."""
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the admin password needs at least {MIN_PASSWORD} characters")
        stored = hash_password(password)
        with self._tx() as conn:
            conn.execute(delete(ADMIN))
            conn.execute(ADMIN.insert(), {"id": 1, "password_hash": stored, "changed": time.time()})
            conn.execute(delete(SESSIONS))

    def admin_configured(self) -> bool:
        with self._tx() as conn:
            return conn.scalar(select(ADMIN.c.id)) is not None

    def check_admin(self, password: str) -> bool:
        with self._tx() as conn:
            stored = conn.scalar(select(ADMIN.c.password_hash))
        if stored is None:
            return False
        return check_password(password, stored)

    # -- API tokens --------------------------------------------------------------------------------
    def create_token(self, name: str) -> str:
        """A new token; the only time it is ever seen is in this return value."""
        if not name or len(name) > TOKEN_NAME_MAX or not name.isprintable():
            raise ConfigError(f"token name {name!r}: 1-{TOKEN_NAME_MAX} printable characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._tx() as conn:
                conn.execute(
                    TOKENS.insert(),
                    {"name": name, "digest": _digest(token), "created": time.time()},
                )
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConfigError(f"token {name!r} exists already") from None
            raise
        return token

    def tokens(self) -> list[TokenInfo]:
        with self._tx() as conn:
            rows = conn.execute(
                select(TOKENS.c.name, TOKENS.c.created, TOKENS.c.last_used).order_by(TOKENS.c.name)
            ).all()
        return [TokenInfo(r.name, r.created, r.last_used) for r in rows]

    def revoke_token(self, name: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(delete(TOKENS).where(TOKENS.c.name == name)).rowcount)

    def check_token(self, token: str) -> str | None:
        """The token's name if it is valid."""
        digest = _digest(token)
        with self._tx() as conn:
            name = conn.scalar(select(TOKENS.c.name).where(TOKENS.c.digest == digest))
            if name is not None:
                conn.execute(
                    update(TOKENS).where(TOKENS.c.name == name).values(last_used=time.time())
                )
        return name

    # -- browser sessions --------------------------------------------------------------------------
    def open_session(self, lifetime: float) -> tuple[str, Session]:
        """A new session: the cookie value (returned once) and what is stored about it."""
        cookie = secrets.token_urlsafe(32)
        now = time.time()
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
                },
            )
        return cookie, session

    def session(self, cookie: str) -> Session | None:
        with self._tx() as conn:
            row = conn.execute(
                select(SESSIONS).where(SESSIONS.c.digest == _digest(cookie))
            ).one_or_none()
        if row is None or row.expires < time.time():
            return None
        return Session(row.digest, row.csrf, row.expires)

    def close_session(self, session: Session) -> None:
        with self._tx() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.digest == session.digest))
