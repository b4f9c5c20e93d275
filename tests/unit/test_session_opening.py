"""Opening an IMAP session in few round trips (issue 17 rule 6): capabilities from the greeting
and from the login's answer, SASL-IR, ENABLE and NAMESPACE pipelined. Scripted servers, no
sockets: what the client wrote is asserted, line by line."""

from __future__ import annotations

import base64
import json

import pytest
from imapclient.exceptions import LoginError

from mailferry.adapters.imap.opening import Namespaces, enable_and_namespace, personal_namespace
from mailferry.adapters.imap.sasl import sasl_login, token_response
from mailferry.adapters.imap.session import (
    Client,
    Credentials,
    _Greeted,
    _login,
    greeting_capabilities,
)
from mailferry.adapters.imap.wire import Pipeline
from mailferry.domain.errors import AuthError, ConnectError, ThrottledError
from mailferry.domain.model import AuthMethod, Endpoint, Security
from tests.unit.test_wire import ScriptedServer

DOVECOT = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"
    b" AUTH=LOGIN] Dovecot (Debian) ready.\r\n"
)
EXCHANGE = b"* OK The Microsoft Exchange IMAP4 service is ready. [TQBXADIAUABSADAA]\r\n"
DOVECOT_FIRST = ("IMAP4REV1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+")
PLAIN = ("AUTH=PLAIN", "AUTH=LOGIN")
POST_LOGIN = b"IMAP4rev1 SASL-IR ENABLE CONDSTORE NAMESPACE MOVE"
ENDPOINT = Endpoint("mail.example", 143, Security.NONE, "bob")


class _NoSocket:
    def settimeout(self, _timeout: float | None) -> None:
        pass


class ScriptedImap(_Greeted):
    """imaplib over a script instead of a socket: each line the client completes is answered
    with the next reply, ``TAG`` standing for the tag of the command it belongs to."""

    def __init__(self, greeting: bytes, replies: list[bytes]) -> None:
        self._greeting, self._replies = greeting, list(replies)
        super().__init__("scripted", 143)

    def open(self, host: str = "", port: int = 143, timeout: float | None = None) -> None:
        self.host, self.port, self.sock = host, port, _NoSocket()
        self.lines: list[bytes] = []
        self.writes: list[bytes] = []
        self._incoming, self._partial, self._tag = bytearray(self._greeting), b"", b""

    def send(self, data: bytes) -> None:
        self.writes.append(data)
        self._partial += data
        while b"\r\n" in self._partial:
            line, self._partial = self._partial.split(b"\r\n", 1)
            self.lines.append(line)
            if b" " in line:  # a command (imaplib's tag or ours), not a SASL response
                self._tag = line.split(b" ", 1)[0]
            if self._replies:
                self._incoming += self._replies.pop(0).replace(b"TAG", self._tag)

    def readline(self) -> bytes:
        end = self._incoming.find(b"\n") + 1 or len(self._incoming)
        line = bytes(self._incoming[:end])
        del self._incoming[:end]
        return line

    def read(self, size: int) -> bytes:
        data = bytes(self._incoming[:size])
        del self._incoming[:size]
        return data

    def shutdown(self) -> None:
        pass

    def commands(self) -> list[bytes]:
        """The command lines sent (their tags left out), continuation lines as they were."""
        return [line.split(b" ", 1)[1] if b" " in line else line for line in self.lines]


class ScriptedClient(Client):
    def __init__(self, imap: ScriptedImap) -> None:
        self._scripted = imap
        super().__init__("scripted", port=143, ssl=False)
        self._imap.debug = 0

    def _create_IMAP4(self) -> ScriptedImap:  # noqa: N802 - imapclient's name
        return self._scripted


def login(greeting: bytes, replies: list[bytes], credentials: Credentials) -> ScriptedClient:
    client = ScriptedClient(ScriptedImap(greeting, replies))
    _login(client, ENDPOINT, credentials)
    return client


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


# -- capabilities --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [
        (DOVECOT, (*DOVECOT_FIRST, *PLAIN)),
        (b"* PREAUTH [CAPABILITY IMAP4rev1 IDLE] Logged in as bob", ("IMAP4REV1", "IDLE")),
        (b"* ok [capability imap4rev1 auth=plain] [ready]", ("IMAP4REV1", "AUTH=PLAIN")),
        (EXCHANGE, None),  # no capabilities announced: asked for
        (b"* OK [CAPABILITY IDLE AUTH=PLAIN] not IMAP4rev1", None),  # imaplib would refuse it
        (b"* OK [ALERT] [CAPABILITY IMAP4rev1] second code", None),
    ],
)
def test_greeting_capabilities(greeting, expected):
    assert greeting_capabilities(greeting.rstrip(b"\r\n")) == expected


def test_capabilities_come_from_the_greeting_without_a_command():
    imap = ScriptedImap(DOVECOT, [])
    assert imap.lines == []  # nothing asked
    assert "AUTH=PLAIN" in imap.capabilities
    assert "CAPABILITY" not in imap.untagged_responses  # never mistaken for post-login ones


def test_a_greeting_without_capabilities_costs_the_command():
    imap = ScriptedImap(EXCHANGE, [b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nTAG OK done\r\n"])
    assert imap.commands() == [b"CAPABILITY"]
    assert imap.capabilities == ("IMAP4REV1", "AUTH=PLAIN")


def test_after_starttls_capabilities_are_asked_again():
    """What the greeting said before TLS may have been forged (RFC 3501 6.2.1): the greeting
    announced AUTH=PLAIN; over TLS the server says otherwise, and that is what counts."""
    imap = ScriptedImap(DOVECOT, [b"* CAPABILITY IMAP4rev1 AUTH=XOAUTH2\r\nTAG OK done\r\n"])
    imap._tls_established = True  # as imaplib's starttls sets it before asking again
    imap._get_capabilities()
    assert imap.commands() == [b"CAPABILITY"]
    assert imap.capabilities == ("IMAP4REV1", "AUTH=XOAUTH2")


def test_post_login_capabilities_from_the_tagged_ok():
    client = login(
        DOVECOT, [b"TAG OK [CAPABILITY %s] Logged in [really]\r\n" % POST_LOGIN], Credentials("pw")
    )
    assert client._scripted.commands() == [b"AUTHENTICATE PLAIN " + b64(b"\0bob\0pw")]
    assert client.capabilities() == tuple(POST_LOGIN.upper().split())


def test_post_login_capabilities_from_an_untagged_answer_during_login():
    replies = [b"* CAPABILITY %s\r\nTAG OK Logged in\r\n" % POST_LOGIN]
    client = login(DOVECOT, replies, Credentials("pw"))
    assert b"CONDSTORE" in client.capabilities()
    assert len(client._scripted.lines) == 1


COURIER = b"* OK [CAPABILITY IMAP4rev1 NAMESPACE IDLE] Courier-IMAP ready\r\n"


def test_without_post_login_capabilities_they_are_asked_never_the_pre_login_ones():
    """Courier: LOGIN says nothing; CAPABILITY goes out with NAMESPACE (announced before login)."""
    replies = [
        b"TAG OK LOGIN Ok.\r\n",
        b"* CAPABILITY IMAP4rev1 NAMESPACE\r\nTAG OK done\r\n",
        b'* NAMESPACE (("INBOX." ".")) NIL NIL\r\nTAG OK done\r\n',
    ]
    client = login(COURIER, replies, Credentials("pw"))
    assert client._scripted.commands() == [b'LOGIN bob "pw"', b"CAPABILITY", b"NAMESPACE"]
    assert client._scripted.writes[-1] == b"mf1 CAPABILITY\r\nmf2 NAMESPACE\r\n"  # one write
    assert client.capabilities() == (b"IMAP4REV1", b"NAMESPACE")  # no IDLE: post-login list
    assert client.namespaces == Namespaces(("INBOX.", "."))
    server = ScriptedServer(b"")  # the account asks for neither again
    assert enable_and_namespace(Pipeline(server), frozenset({"NAMESPACE"}), client.namespaces) == (
        "INBOX.",
        ".",
    )
    assert server.sent == []


@pytest.mark.parametrize(
    ("greeting", "replies", "sent"),
    [
        (  # not announced before login: not asked with CAPABILITY
            b"* OK [CAPABILITY IMAP4rev1] ready\r\n",
            [b"* CAPABILITY IMAP4rev1 NAMESPACE\r\nTAG OK done\r\n"],
            [b"CAPABILITY"],
        ),
        (  # refused: no error, the account asks again if the list offers it
            COURIER,
            [b"* CAPABILITY IMAP4rev1 NAMESPACE\r\nTAG OK done\r\n", b"TAG BAD unknown\r\n"],
            [b"CAPABILITY", b"NAMESPACE"],
        ),
        (  # answered, but not offered after login: not believed
            COURIER,
            [
                b"* CAPABILITY IMAP4rev1\r\nTAG OK done\r\n",
                b'* NAMESPACE (("" "/")) NIL NIL\r\nTAG OK done\r\n',
            ],
            [b"CAPABILITY", b"NAMESPACE"],
        ),
    ],
)
def test_namespace_with_capability_only_where_it_counts(greeting, replies, sent):
    client = login(greeting, [b"TAG OK LOGIN Ok.\r\n", *replies], Credentials("pw"))
    assert client._scripted.commands()[1:] == sent
    assert client.namespaces is None


def test_refused_capability_after_login_fails_the_session():
    replies = [b"TAG OK LOGIN Ok.\r\n", b"TAG NO not now\r\n", b"TAG OK done\r\n"]
    with pytest.raises(ConnectError, match="server refused: CAPABILITY NO: not now"):
        login(COURIER, replies, Credentials("pw"))


# -- SASL-IR -------------------------------------------------------------------------------------


def test_without_sasl_ir_plain_waits_for_the_continuation():
    greeting = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"
    replies = [b"+ \r\n", b"TAG OK [CAPABILITY IMAP4rev1 MOVE] in\r\n"]
    client = login(greeting, replies, Credentials("pw"))
    assert client._scripted.commands() == [b"AUTHENTICATE PLAIN", b64(b"\0bob\0pw")]
    assert b"MOVE" in client.capabilities()


def test_sasl_ir_plain_with_an_admin_acting_as_the_user():
    client = ScriptedClient(ScriptedImap(DOVECOT, [b"TAG OK [CAPABILITY IMAP4rev1] in\r\n"]))
    admin = Endpoint("mail.example", 143, Security.NONE, "bob", authuser="admin")
    _login(client, admin, Credentials("secret"))
    assert client._scripted.lines[0].endswith(b" AUTHENTICATE PLAIN " + b64(b"bob\0admin\0secret"))


def test_refused_sasl_ir_login_keeps_its_error():
    with pytest.raises(AuthError, match=r"^login refused for bob at mail.example: \[AUTH"):
        login(DOVECOT, [b"TAG NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"], Credentials())


def test_throttled_sasl_ir_login():
    replies = [b"TAG NO [UNAVAILABLE] Too many logins, try again in 30 seconds\r\n"]
    with pytest.raises(ThrottledError, match=r"login for bob at mail\.example throttled"):
        login(DOVECOT, replies, Credentials("pw"))


def test_bye_during_sasl_ir_login_is_a_lost_connection():
    replies = [b"* BYE Server shutting down\r\n"]
    with pytest.raises(ConnectError, match=r"connection lost while logging in bob.*shutting down"):
        login(DOVECOT, replies, Credentials("pw"))


class Tokens:
    def token(self) -> str:
        return "TOKEN"

    def invalidate(self, _token: str) -> None:
        pass


def test_refused_token_with_sasl_ir_ends_with_the_dummy_response_and_keeps_the_status():
    greeting = b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"
    challenge = b64(json.dumps({"status": "401", "schemes": "bearer"}).encode())
    replies = [b"+ " + challenge + b"\r\n", b"TAG NO [AUTHENTICATIONFAILED] Invalid\r\n"]
    with pytest.raises(AuthError, match=r"Invalid \(XOAUTH2, token refused with status 401\)$"):
        login(greeting, replies, Credentials(tokens=Tokens()))


def test_token_login_with_sasl_ir_is_one_command_line():
    greeting = b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready\r\n"
    client = login(
        greeting, [b"TAG OK [CAPABILITY IMAP4rev1] in\r\n"], Credentials(tokens=Tokens())
    )
    sent = token_response(AuthMethod.OAUTHBEARER, "bob", "TOKEN")(b"")
    assert client._scripted.commands() == [b"AUTHENTICATE OAUTHBEARER " + b64(sent)]


def test_a_second_challenge_to_plain_cancels():
    imap = ScriptedImap(DOVECOT, [b"+ \r\n", b"TAG BAD cancelled\r\n"])
    client = ScriptedClient(imap)
    with pytest.raises(LoginError, match="cancelled"):
        sasl_login(client, "PLAIN", lambda _c: None if imap.lines else b"x", initial=True)
    assert imap.commands() == [b"AUTHENTICATE PLAIN eA==", b"*"]
    assert imap.literal is None
    assert imap.state == "NONAUTH"


# -- ENABLE and NAMESPACE ------------------------------------------------------------------------


def test_enable_and_namespace_go_out_together():
    server = ScriptedServer(
        b"* ENABLED CONDSTORE\r\nmf1 OK Enabled\r\n"
        b'* NAMESPACE (("INBOX." ".")) NIL (("#shared." "."))\r\nmf2 OK done\r\n'
    )
    caps = frozenset({"ENABLE", "CONDSTORE", "NAMESPACE"})
    assert enable_and_namespace(Pipeline(server), caps) == ("INBOX.", ".")
    assert server.sent == [b"mf1 ENABLE CONDSTORE\r\nmf2 NAMESPACE\r\n"]


@pytest.mark.parametrize(
    ("caps", "sent"),
    [
        ({"NAMESPACE", "ENABLE"}, b"mf1 NAMESPACE\r\n"),  # Courier: nothing to enable
        ({"CONDSTORE", "ENABLE"}, b"mf1 ENABLE CONDSTORE\r\n"),
    ],
)
def test_only_what_is_offered_is_sent(caps, sent):
    server = ScriptedServer(b'* NAMESPACE (("" "/")) NIL NIL\r\nmf1 OK done\r\n')
    found = enable_and_namespace(Pipeline(server), frozenset(caps))
    assert server.sent == [sent]
    assert found == (("", "/") if "NAMESPACE" in caps else None)


def test_neither_offered_sends_nothing():
    server = ScriptedServer(b"")
    assert enable_and_namespace(Pipeline(server), frozenset({"IMAP4REV1"})) is None
    assert server.sent == []


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (b"mf1 NO not now\r\n", ConnectError, "server refused: ENABLE CONDSTORE NO: not now"),
        (b"mf1 NO [LIMIT] Too many commands, retry in 5 seconds\r\n", ThrottledError, "slow down"),
    ],
)
def test_refused_enable_fails_the_session(answer, error, text):
    server = ScriptedServer(answer + b'* NAMESPACE (("" ".")) NIL NIL\r\nmf2 OK done\r\n')
    caps = frozenset({"ENABLE", "CONDSTORE", "NAMESPACE"})
    with pytest.raises(error, match=text):
        enable_and_namespace(Pipeline(server), caps)


@pytest.mark.parametrize(
    ("line", "literals", "expected"),
    [
        (b'(("" ".")) NIL NIL', [], ("", ".")),
        (b'(("INBOX." ".")) (("user." ".")) (("" "."))', [], ("INBOX.", ".")),
        (b'(("" NIL)) NIL NIL', [], ("", None)),
        (b"NIL NIL NIL", [], None),
        (b'(({literal} ".")) NIL NIL', [b"Entw&APw-rfe/"], ("Entwürfe/", ".")),
    ],
)
def test_personal_namespace(line, literals, expected):
    assert personal_namespace(line, literals) == expected


def test_login_leaves_imaplib_authenticated():
    client = login(DOVECOT, [b"TAG OK [CAPABILITY IMAP4rev1] in\r\n"], Credentials("pw"))
    assert client._imap.state == "AUTH"
