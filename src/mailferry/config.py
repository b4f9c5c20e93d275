"""Typed settings: endpoint URLs and where state lives. Validated once; every problem reported together."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mailferry.domain.errors import ConfigError
from mailferry.domain.model import Endpoint, Security

SCHEMES = {
    "imaps": (Security.SSL, 993),
    "imap+starttls": (Security.STARTTLS, 143),
    "imap": (Security.NONE, 143),
}


def parse_endpoint(
    url: str,
    *,
    authuser: str | None = None,
    allow_plaintext: bool = False,
    side: str = "endpoint",
    hint: str | None = None,
) -> Endpoint:
    """``imaps://USER@HOST[:PORT]``; USER may hold ``@`` (the last one ends it) or be percent-encoded.

    A password in the URL (``USER:PASSWORD@HOST``) is refused without echoing the URL: it would
    otherwise become part of the login name, be sent to the server and shown in error lines.
    ``hint`` says where a password goes instead (default: the sync side's options).
    """
    scheme, sep, rest = url.partition("://")
    if ":" in rest.rpartition("@")[0]:
        hint = hint or (
            f"give it with --{side}-password-file, ${password_env(side)} or at the prompt"
        )
        raise ConfigError(
            f"{side} URL: a password does not belong in the URL (USER:PASSWORD@HOST); {hint}"
        )
    if not sep or scheme.lower() not in SCHEMES:
        raise ConfigError(
            f"{side} {url!r}: expected imaps://USER@HOST[:PORT], imap+starttls://…, imap://…, "
            "or maildir:///PATH, mbox:///PATH, eml:///PATH, pst:///PATH"
        )
    security, default_port = SCHEMES[scheme.lower()]
    rest = rest.rstrip("/")
    user_part, at, hostport = rest.rpartition("@")
    if not at or not user_part:
        raise ConfigError(f"{side} {url!r}: the user is missing (USER@HOST)")
    if not hostport:
        raise ConfigError(f"{side} {url!r}: the host is missing")
    try:
        parsed = urlsplit(f"//{hostport}")
        host = parsed.hostname
        port = parsed.port or default_port
    except ValueError as exc:
        raise ConfigError(f"{side} {url!r}: {exc}") from None
    if not host:
        raise ConfigError(f"{side} {url!r}: the host is missing")
    if security is Security.NONE and not allow_plaintext and not is_loopback(host):
        raise ConfigError(
            f"{side} {url!r}: imap:// sends the password unencrypted; it is allowed only to "
            "loopback, or with --allow-plaintext"
        )
    return Endpoint(host, port, security, unquote(user_part), authuser or None)


FILE_SCHEMES = ("maildir", "mbox", "eml", "pst")
FILE_TARGETS = ("maildir", "mbox")


@dataclass(frozen=True)
class FileStore:
    """Mail in files (``maildir:///path``, ``mbox:///path``, ``eml:///path``, ``pst:///path``):
    the place, where an Endpoint is a server. ``display`` names it in the state (``pair_key``)."""

    kind: str
    path: Path

    def display(self) -> str:
        return f"{self.kind}://{self.path}"


Location = Endpoint | FileStore


def is_file_url(url: str) -> bool:
    return url.partition("://")[0].lower() in FILE_SCHEMES


def parse_file_store(url: str, *, side: str = "endpoint") -> FileStore:
    """``KIND:///absolute/path`` (percent-encoding allowed; a ``~`` is the user's home)."""
    scheme, _, rest = url.partition("://")
    path = unquote(rest)
    if path.startswith("~"):
        path = str(Path(path).expanduser())
    if not path.startswith("/"):
        raise ConfigError(f"{side} {url!r}: expected {scheme.lower()}:///ABSOLUTE/PATH")
    if side == "target" and scheme.lower() not in FILE_TARGETS:
        raise ConfigError(
            f"target {url!r}: {scheme.lower()}:// is a source only; a target can be "
            "maildir:// or mbox://"
        )
    return FileStore(scheme.lower(), Path(path))


def parse_location(
    url: str, *, authuser: str | None = None, allow_plaintext: bool = False, side: str = "endpoint"
) -> Location:
    """A sync side: a file store for the file schemes, else an IMAP endpoint."""
    if is_file_url(url):
        return parse_file_store(url, side=side)
    return parse_endpoint(url, authuser=authuser, allow_plaintext=allow_plaintext, side=side)


def password_env(side: str) -> str:
    """The variable holding a sync side's password: MAILFERRY_SOURCE_PASSWORD, ..._TARGET_..."""
    return f"MAILFERRY_{side.upper()}_PASSWORD"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


STATE_ENV = "MAILFERRY_STATE"  # the service commands' --state (``sync`` reads no variable)


def default_state_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailferry" / "state.sqlite3"


DATABASE_ENV = "MAILFERRY_DATABASE"  # the service commands' --database
# The drivers mailferry ships with, by the scheme a user writes: plain postgresql:// would mean
# psycopg2 to SQLAlchemy, which is not installed.
DATABASE_SCHEMES = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
}


def parse_database_url(text: str, option: str = "--database") -> str:
    """A state database URL (``postgresql://USER@HOST/DB``, ``sqlite:///PATH``), its driver
    made explicit. The password may be in the URL or, better, in $PGPASSWORD or ~/.pgpass."""
    scheme, sep, rest = text.strip().partition("://")
    if not sep or not rest:
        raise ConfigError(
            f"{option} {_shown(text)}: expected postgresql://USER@HOST[:PORT]/DATABASE"
        )
    driver = DATABASE_SCHEMES.get(scheme.lower())
    if driver is None:
        raise ConfigError(f"{option}: {scheme}:// is not supported (postgresql:// or sqlite:///)")
    return f"{driver}://{rest}"


def _shown(text: str) -> str:
    """A URL for an error message, without any password in it."""
    scheme, sep, rest = text.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{host}"
    return repr(f"{scheme}{sep}{rest}")


@dataclass(frozen=True)
class Storage:
    """Where the state lives: the SQLite file (``--state``; the default), or a server database
    (``--database``) in its place. The key ring and stored sign-ins stay in the file's directory,
    a local one, either way."""

    path: Path | None = None
    database: str | None = None

    @property
    def state_path(self) -> Path:
        return self.path or default_state_path()


def data_dir(state_path: Path | None) -> Path:
    """The data directory: the state database's (the key ring and stored sign-ins live there)."""
    return (state_path or default_state_path()).parent


def pair_key(source: Location, target: Location) -> str:
    """The identity of a migration pair in the state database."""
    return f"{source.display()} -> {target.display()}"


def parse_date(value: str | None, option: str, problems: list[str]) -> dt.date | None:
    """``YYYY-MM-DD`` (blank: None); a bad value is added to ``problems`` so all are reported together."""
    if value is None or not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        problems.append(f"{option} {value!r}: expected a date as YYYY-MM-DD")
        return None
