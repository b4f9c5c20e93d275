"""Shared fixtures: throwaway IMAP servers (Dovecot, Cyrus, Courier), DAV servers (Radicale,
Xandikos) with the SMTP sink they send to, fresh users on them, and a PostgreSQL cluster with a
fresh database per test that asks for one."""

from __future__ import annotations

import itertools
import lzma
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mailferry.adapters.store.engine import open_database
from mailferry.adapters.store.schema import upgrade_all
from mailferry.adapters.store.sync_state import SqlStateStore
from mailferry.bootstrap import open_service
from mailferry.sandbox.courier import CourierServer
from mailferry.sandbox.cyrus import CyrusServer
from mailferry.sandbox.davserver import DavServer
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.postgres import PostgresServer
from mailferry.sandbox.radicale import RadicaleServer
from mailferry.sandbox.smtpsink import SmtpSink
from mailferry.sandbox.xandikos import XandikosServer
from mailferry.service.batches import BatchService

# A typical old host: "/" hierarchy, special-use folders under their Apple/Outlook names,
# flagged only if the user has them (nothing is auto-created).
SOURCE_SPECIAL_USE = {
    "Sent Messages": "\\Sent",
    "Deleted Messages": "\\Trash",
    "Drafts": "\\Drafts",
}

MakeUser = Callable[[DovecotServer | CyrusServer | CourierServer | DavServer], tuple[str, str]]

_user_numbers = itertools.count(1)


PST_DATA = Path(__file__).resolve().parent / "data" / "pst"


def _unpacked(tmp_path_factory: pytest.TempPathFactory, packed_name: str) -> Path:
    path = tmp_path_factory.mktemp("pst") / "mailbox.ost"
    with lzma.open(PST_DATA / packed_name) as packed, path.open("wb") as out:
        shutil.copyfileobj(packed, out)
    return path


@pytest.fixture(scope="session")
def ost(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pst-extractor's test OST (MIT, tests/data/pst/NOTICE), unpacked once a session; tests
    that damage or rename it work on a copy."""
    return _unpacked(tmp_path_factory, "pstextractortest.ost.xz")


@pytest.fixture(scope="session")
def people_ost(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pst-extractor 1.0.0's OST (Apache-2.0, tests/data/pst/NOTICE): contacts with a photo, a
    distribution list, tasks, bodies kept only as RTF, Outlook's hidden folders."""
    return _unpacked(tmp_path_factory, "mtnman.ost.xz")


@pytest.fixture(scope="session")
def dovecot_slash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """Source-like server: delimiter "/", names may contain ".", special-use not auto-created."""
    root = tmp_path_factory.mktemp("dovecot_slash")
    with DovecotServer(
        root, delimiter="/", special_use=SOURCE_SPECIAL_USE, auto_create=False
    ) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_dot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """Fresh target: delimiter ".", Sent/Drafts/Trash/Junk auto-created and subscribed."""
    root = tmp_path_factory.mktemp("dovecot_dot")
    with DovecotServer(root, delimiter=".") as server:
        yield server


@pytest.fixture
def make_user(request: pytest.FixtureRequest) -> MakeUser:
    """``make_user(server) -> (user, password)``: a new, empty account for this test only."""
    stem = "".join(c for c in request.node.name.lower() if c.isalnum())[:24] or "user"

    def make(server: DovecotServer | CyrusServer | CourierServer | DavServer) -> tuple[str, str]:
        user = f"{stem}{next(_user_numbers)}"
        password = f"pw-{user}"
        server.add_user(user, password)
        return user, password

    return make


@pytest.fixture(scope="session")
def dovecot_prefixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """Target with Courier's personal namespace, ("INBOX." "."): folders are INBOX.Name."""
    root = tmp_path_factory.mktemp("dovecot_prefixed")
    with DovecotServer(root, delimiter=".", prefix="INBOX.") as server:
        yield server


@pytest.fixture(scope="session")
def cyrus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CyrusServer]:
    """Debian's Cyrus IMAP 3.6 as configured there: ("INBOX." "."), munge8bit on."""
    with CyrusServer(tmp_path_factory.mktemp("cyrus")) as server:
        yield server


@pytest.fixture(scope="session")
def courier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CourierServer]:
    """Debian's Courier-IMAP 5.0: ("INBOX." "."), no CONDSTORE, time-based UIDVALIDITY."""
    with CourierServer(tmp_path_factory.mktemp("courier")) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """Where the DAV servers send any mail (Radicale's email hook, Xandikos's iMIP)."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def radicale(
    tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink
) -> Iterator[RadicaleServer]:
    """Radicale 3 over plain HTTP, htpasswd users, a default calendar and address book each."""
    with RadicaleServer(tmp_path_factory.mktemp("radicale"), smtp_port=smtp_sink.port) as server:
        yield server


@pytest.fixture(scope="session")
def xandikos(
    tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink
) -> Iterator[XandikosServer]:
    """Xandikos multi-user over HTTPS (its CA in ``ca_file``), htpasswd users, default collections."""
    with XandikosServer(tmp_path_factory.mktemp("xandikos"), smtp_port=smtp_sink.port) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (no fsync), 127.0.0.1 and a Unix socket, for the session."""
    with PostgresServer(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres(postgres_server: PostgresServer) -> str:
    """The URL of the session's shared database: ``postgresql+psycopg://mailferry:PW@...``."""
    return postgres_server.url()


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database for this test only (dropped afterwards)."""
    name = f"test{next(_database_numbers)}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


@dataclass(frozen=True)
class StateDatabase:
    """A state database for a test, SQLite or PostgreSQL: its URL, and SQL behind the stores' back."""

    kind: str  # "sqlite" or "postgresql"
    url: str
    path: Path | None = None  # the SQLite file

    def upgrade(self) -> None:
        """What `mailferry db upgrade` does: every component's tables created or brought up to
        date (a PostgreSQL database is never upgraded by opening it)."""
        db = open_database(self.url)
        try:
            upgrade_all(db)
        finally:
            db.release()

    def open(self) -> SqlStateStore:
        """The sync state store, on a database made ready the way its kind is."""
        if self.path is None:
            self.upgrade()
        return SqlStateStore.open(self.url)

    def raw(self, *statements: str) -> list[Any]:
        """Run statements in one transaction on a connection of its own; the last one's rows."""
        if self.path is not None:
            with closing(sqlite3.connect(self.path)) as lite, lite:
                rows: list[Any] = []
                for statement in statements:
                    rows = lite.execute(statement).fetchall()
                return rows
        with psycopg.connect(self.url.replace("+psycopg", "", 1)) as conn:
            found: list[Any] = []
            for statement in statements:
                cursor = conn.execute(statement.encode())
                found = cursor.fetchall() if cursor.description else []
            return found


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def state_database(request: pytest.FixtureRequest, tmp_path: Path) -> StateDatabase:
    """Every store test once on a SQLite file and once on a new PostgreSQL database."""
    if request.param == "postgresql":
        return StateDatabase("postgresql", request.getfixturevalue("postgres_database"))
    path = tmp_path / "state" / "mailferry.sqlite"
    path.parent.mkdir(mode=0o700)
    return StateDatabase("sqlite", f"sqlite+pysqlite:///{path}", path)


def open_test_service(database: StateDatabase, tmp_path: Path) -> BatchService:
    """The batch service on a test's state database; its key ring in a local directory."""
    if database.path is not None:
        return open_service(database.path)
    database.upgrade()
    return open_service(tmp_path / "data" / "state.sqlite3", database.url)


def dump(database: StateDatabase, *tables: str) -> str:
    """Every row of ``tables`` as text: what a thief of the database would read."""
    return "\n".join(repr(database.raw(f"SELECT * FROM {table}")) for table in tables)  # noqa: S608
