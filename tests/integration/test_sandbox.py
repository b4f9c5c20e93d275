"""The sandbox works: Dovecot fixtures, users, master login, and the corpus round trip."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

import imapclient
import pytest
from imapclient.exceptions import IMAPClientError, LoginError

from mailferry.sandbox.corpus import INBOX, build_corpus, connect, folder_name, load_corpus
from mailferry.sandbox.dovecot import DovecotServer, SandboxError

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MakeUser

pytestmark = pytest.mark.integration

SERVERS = ["dovecot_slash", "dovecot_dot"]
AWKWARD_NAMES = ["Entwürfe", "Reçus", "日本語", "Привет", "R&D", "Client Projects", "a~b", "x%y"]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> DovecotServer:
    value: DovecotServer = request.getfixturevalue(request.param)
    return value


def names(client: imapclient.IMAPClient) -> dict[str, set[bytes]]:
    return {name: set(flags) for flags, _, name in client.list_folders()}


def crlf(body: bytes) -> bytes:
    return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_login_shows_the_configured_delimiter(server: DovecotServer, make_user: MakeUser) -> None:
    user, password = make_user(server)
    with connect(server, user, password) as client:
        delimiters = {delimiter for _, delimiter, _ in client.list_folders()}
        assert delimiters == {server.delimiter.encode()}
        assert b"UIDPLUS" in client.capabilities()


def test_awkward_folder_names_are_accepted(server: DovecotServer, make_user: MakeUser) -> None:
    user, password = make_user(server)
    with connect(server, user, password) as client:
        for name in AWKWARD_NAMES:
            client.create_folder(name)
        assert set(AWKWARD_NAMES) <= names(client).keys()


def test_slash_server_keeps_dots_in_names(dovecot_slash: DovecotServer, make_user: MakeUser):
    user, password = make_user(dovecot_slash)
    with connect(dovecot_slash, user, password) as client:
        client.create_folder("Releases/v1.2")
        listed = names(client)
        assert "Releases/v1.2" in listed
        assert "Releases/v1" not in listed


@pytest.mark.parametrize(
    ("fixture", "name"),
    [
        ("dovecot_dot", "x/y"),  # maildir++ file names cannot hold "/"
        ("dovecot_dot", ".lead"),  # begins with the delimiter
        ("dovecot_slash", "~home"),  # leading "~" is refused everywhere
        ("dovecot_dot", "~home"),
        ("dovecot_slash", "cur"),  # maildir's own directories, in LAYOUT=fs
        ("dovecot_slash", "x\ty"),  # control characters
    ],
)
def test_refused_folder_names(
    request: pytest.FixtureRequest, make_user: MakeUser, fixture: str, name: str
) -> None:
    server: DovecotServer = request.getfixturevalue(fixture)
    user, password = make_user(server)
    with connect(server, user, password) as client, pytest.raises(IMAPClientError):
        client.create_folder(name)


def test_target_has_special_use_folders(dovecot_dot: DovecotServer, make_user: MakeUser) -> None:
    user, password = make_user(dovecot_dot)
    with connect(dovecot_dot, user, password) as client:
        listed = names(client)
        subscribed = {name for _, _, name in client.list_sub_folders()}
    for name in ("Sent", "Drafts", "Trash", "Junk"):
        assert f"\\{name}".encode() in listed[name]
        assert name in subscribed


def test_source_flags_special_use_only_once_created(
    dovecot_slash: DovecotServer, make_user: MakeUser
) -> None:
    user, password = make_user(dovecot_slash)
    with connect(dovecot_slash, user, password) as client:
        assert names(client).keys() == {"INBOX"}
        client.create_folder("Sent Messages")
        client.create_folder("Deleted Messages")
        listed = names(client)
    assert b"\\Sent" in listed["Sent Messages"]
    assert b"\\Trash" in listed["Deleted Messages"]


def test_master_user_logs_in_as_the_user(dovecot_dot: DovecotServer, make_user: MakeUser) -> None:
    user, password = make_user(dovecot_dot)
    with connect(dovecot_dot, user, password) as client:
        client.append("INBOX", b"Subject: mine\r\n\r\nhello\r\n")
    master, master_password = dovecot_dot.master_user, dovecot_dot.master_password
    with imapclient.IMAPClient(dovecot_dot.host, dovecot_dot.port, ssl=False) as client:
        client.plain_login(master, master_password, authorization_identity=user)
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    with imapclient.IMAPClient(dovecot_dot.host, dovecot_dot.port, ssl=False) as client:
        client.login(f"{user}*{master}", master_password)
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    with imapclient.IMAPClient(dovecot_dot.host, dovecot_dot.port, ssl=False) as client:
        with pytest.raises(LoginError):
            client.plain_login(master, "wrong", authorization_identity=user)
        client.shutdown()


def test_users_added_at_runtime_log_in_at_once(dovecot_dot: DovecotServer) -> None:
    for number in range(3):
        user = f"runtime{number}"
        dovecot_dot.add_user(user, "secret")
        with connect(dovecot_dot, user, "secret") as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
    with pytest.raises(SandboxError, match="exists already"):
        dovecot_dot.add_user("runtime0", "again")


def test_doveadm_sees_logged_in_users(dovecot_dot: DovecotServer, make_user: MakeUser) -> None:
    user, password = make_user(dovecot_dot)
    with connect(dovecot_dot, user, password):
        assert user in dovecot_dot.doveadm("who")
    assert "Dovecot" in dovecot_dot.log_text()


def test_corpus_is_deterministic_and_complete() -> None:
    corpus = build_corpus(seed=7)
    assert corpus == build_corpus(seed=7)
    assert corpus != build_corpus(seed=8)
    assert corpus.total_bytes < 3_000_000
    flags = {flag for message in corpus.messages for flag in message.flags}
    assert {"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted"} <= flags
    assert {"$Forwarded", "$Label1", "$MDNSent", "Work"} <= flags
    bodies = [m.body for m in corpus.in_folder(INBOX)]
    assert sorted(bodies.count(b) for b in set(bodies) if bodies.count(b) > 1) == [2, 3]
    assert any(b"\r\n" not in body for body in bodies)  # bare LF
    assert any(b"Message-ID" not in body for body in bodies)
    assert all(m.internaldate.tzinfo is not None for m in corpus.messages)
    years = {m.internaldate.year for m in corpus.messages}
    assert max(years) - min(years) >= 12
    assert ("Projects", "2024", "Q1") in corpus.folders
    big = build_corpus(seed=7, big_message_mb=2)
    assert max(len(m.body) for m in big.messages) // 1_000_000 == 2


def test_corpus_round_trip(server: DovecotServer, make_user: MakeUser) -> None:
    corpus = build_corpus(seed=3)
    user, password = make_user(server)
    with connect(server, user, password) as client:
        report = load_corpus(client, corpus, server.delimiter)
        # "." inside a name is impossible where "." is the delimiter: skipped and reported.
        refused = {("Releases", "v1.2")} if server.delimiter == "." else set()
        assert report.refused.keys() == refused
        assert report.appended + report.skipped_messages == len(corpus.messages)
        listed = names(client)
        assert b"\\Noselect" in listed["Archive"]  # exists only as a parent
        missing = refused | ({("Releases",)} if refused else set())  # parent of refused only
        for folder in set(corpus.folders) - missing:
            assert folder_name(folder, server.delimiter) in listed
        for folder in [INBOX, ("Entwürfe",), ("R&D",), ("Sent Messages",)]:
            check_folder(client, corpus.in_folder(folder), folder_name(folder, server.delimiter))


def check_folder(client: imapclient.IMAPClient, expected: list, name: str) -> None:
    client.select_folder(name, readonly=True)
    uids = client.search("ALL")
    assert len(uids) == len(expected)
    data = client.fetch(uids, ["BODY.PEEK[]", "RFC822.SIZE", "INTERNALDATE", "FLAGS"])
    for uid, message in zip(uids, expected, strict=True):
        got = data[uid]
        # Dovecot serves bare-LF messages with CRLF; RFC822.SIZE counts what it serves.
        assert got[b"BODY[]"] == crlf(message.body)
        assert got[b"RFC822.SIZE"] == len(got[b"BODY[]"])
        # The instant survives; the zone does not (maildir keeps only a file mtime).
        assert got[b"INTERNALDATE"] == message.internaldate
        flags = {flag.decode() for flag in got[b"FLAGS"]} - {"\\Recent"}
        assert flags == set(message.flags)


def test_tls_quota_and_capability(tmp_path: Path, make_user: MakeUser) -> None:
    capability = "IMAP4rev1 UIDPLUS LITERAL+ IDLE NAMESPACE ID UNSELECT CHILDREN MOVE"
    with DovecotServer(
        tmp_path / "dovecot", ssl=True, quota_bytes=50_000, capability=capability
    ) as server:
        user, password = make_user(server)
        context = ssl.create_default_context(cafile=str(server.ca_file))
        with imapclient.IMAPClient(server.host, server.ssl_port, ssl_context=context) as client:
            client.login(user, password)
            assert set(client.capabilities()) == set(capability.upper().encode().split())
            client.append("INBOX", b"Subject: big\r\n\r\n" + b"x" * 30_000)
        server.set_quota(user, 10_000)
        with connect(server, user, password) as client, pytest.raises(IMAPClientError):
            client.append("INBOX", b"Subject: big\r\n\r\n" + b"x" * 30_000)
    assert not server.running
