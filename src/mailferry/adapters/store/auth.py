"""The web app's login tables (application ``mailferry.web``): queries only.

What they hold and why (a password's scrypt hash, tokens and sessions by their SHA-256) is the
web's business (``web.credentials``): here arrive only hashes, digests and times, never a
password, a token or a cookie value. Every method is one transaction on the file's shared
``Database``; those that may write say so (``BEGIN IMMEDIATE``), so that a read never has to
turn into a write under another writer's lock.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from mailferry.adapters.store import schema
from mailferry.adapters.store.engine import Database
from mailferry.adapters.store.sqlstore import SqlStore
from mailferry.adapters.store.tables import ADMIN, SESSIONS, TOKENS
from mailferry.domain.errors import Conflict, StateError


@dataclass(frozen=True)
class TokenRow:
    name: str
    created: float
    last_used: float | None
    expires: float | None = None


@dataclass(frozen=True)
class SessionRow:
    digest: str
    csrf: str
    expires: float


class AuthTables(SqlStore):
    """``web_admin``, ``web_tokens``, ``web_sessions``."""

    component = schema.WEB

    @property
    def db(self) -> Database:
        return self._db

    def _tx(self, *, write: bool = True) -> AbstractContextManager[Connection]:
        """A transaction; a writing one unless asked (see the module docstring)."""
        return self._transaction(write=write)

    # -- the admin password ------------------------------------------------------------------------
    def set_admin_hash(self, stored: str, now: float) -> None:
        """Replace the admin's hash; every browser session ends with it."""
        with self._tx() as conn:
            conn.execute(delete(ADMIN))
            conn.execute(ADMIN.insert(), {"id": 1, "password_hash": stored, "changed": now})
            conn.execute(delete(SESSIONS))

    def admin_hash(self) -> str | None:
        with self._tx(write=False) as conn:
            return conn.scalar(select(ADMIN.c.password_hash))

    def replace_admin_hash(self, old: str, new: str) -> None:
        """A rehash: only if nobody changed the hash meanwhile; sessions stay."""
        with self._tx() as conn:
            conn.execute(
                update(ADMIN).where(ADMIN.c.password_hash == old).values(password_hash=new)
            )

    # -- API tokens --------------------------------------------------------------------------------
    def add_token(self, name: str, digest: str, now: float, expires: float | None) -> None:
        row = {"name": name, "digest": digest, "created": now, "expires": expires}
        try:
            with self._tx() as conn:
                conn.execute(TOKENS.insert(), row)
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Conflict(f"token {name!r} exists already") from None
            raise

    def tokens(self) -> list[TokenRow]:
        columns = (TOKENS.c.name, TOKENS.c.created, TOKENS.c.last_used, TOKENS.c.expires)
        with self._tx(write=False) as conn:
            rows = conn.execute(select(*columns).order_by(TOKENS.c.name)).all()
        return [TokenRow(r.name, r.created, r.last_used, r.expires) for r in rows]

    def remove_token(self, name: str) -> bool:
        with self._tx() as conn:
            return bool(conn.execute(delete(TOKENS).where(TOKENS.c.name == name)).rowcount)

    def use_token(self, digest: str, now: float) -> str | None:
        """The name of the token with this digest if it has not expired; marks it used."""
        with self._tx() as conn:
            row = conn.execute(
                select(TOKENS.c.name, TOKENS.c.expires).where(TOKENS.c.digest == digest)
            ).one_or_none()
            if row is None or (row.expires is not None and row.expires <= now):
                return None
            conn.execute(update(TOKENS).where(TOKENS.c.name == row.name).values(last_used=now))
        return str(row.name)

    # -- browser sessions --------------------------------------------------------------------------
    def add_session(self, session: SessionRow, now: float) -> None:
        """Store a new session; expired ones are swept out on the way."""
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

    def use_session(
        self, digest: str, now: float, idle: float, touch_after: float | None
    ) -> SessionRow | None:
        """The session unless expired or idle for longer than ``idle`` (then deleted). Its last
        activity becomes ``now`` if it is older than ``touch_after`` seconds (None: not at all)."""
        with self._tx() as conn:
            row = conn.execute(select(SESSIONS).where(SESSIONS.c.digest == digest)).one_or_none()
            if row is None:
                return None
            seen = row.last_seen if row.last_seen is not None else row.created
            if row.expires < now or seen + idle < now:
                conn.execute(delete(SESSIONS).where(SESSIONS.c.digest == row.digest))
                return None
            if touch_after is not None and now - seen >= touch_after:
                conn.execute(
                    update(SESSIONS).where(SESSIONS.c.digest == row.digest).values(last_seen=now)
                )
        return SessionRow(row.digest, row.csrf, row.expires)

    def remove_session(self, digest: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.digest == digest))
