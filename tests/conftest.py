"""Shared fixtures: throwaway IMAP servers (Dovecot, Cyrus, Courier), DAV servers (Radicale,
Xandikos) with the SMTP sink they send to, fresh users on them, and a PostgreSQL cluster with a
fresh database per test that asks for one."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from mailferry.sandbox.courier import CourierServer
from mailferry.sandbox.cyrus import CyrusServer
from mailferry.sandbox.davserver import DavServer
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.postgres import PostgresServer
from mailferry.sandbox.radicale import RadicaleServer
from mailferry.sandbox.smtpsink import SmtpSink
from mailferry.sandbox.xandikos import XandikosServer

# A typical old host: "/" hierarchy, special-use folders under their Apple/Outlook names,
# flagged only if the user has them (nothing is auto-created).
SOURCE_SPECIAL_USE = {
    "Sent Messages": "\\Sent",
    "Deleted Messages": "\\Trash",
    "Drafts": "\\Drafts",
}

MakeUser = Callable[[DovecotServer | CyrusServer | CourierServer | DavServer], tuple[str, str]]

_user_numbers = itertools.count(1)


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
