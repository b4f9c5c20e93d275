"""What a session costs to open and close on Dovecot, Cyrus and Courier (issue 17 rule 6), counted
by a proxy that sees the server's answers: the greeting's capabilities, SASL-IR, the login's
capabilities, ENABLE and NAMESPACE (or CAPABILITY and NAMESPACE) pipelined, LOGOUT not waited for.

Round trips per session (open + close), before these changes and now: Dovecot and Cyrus 7 -> 3
(greeting, AUTHENTICATE, ENABLE + NAMESPACE); Courier 6 -> 3 (greeting, LOGIN, CAPABILITY +
NAMESPACE: it offers no AUTH=PLAIN and says nothing of its capabilities after login). The two
commands of the last round trip answer to our pipelined tags (``mf1``, ``mf2``); that they leave
in one write is asserted in tests/unit/test_session_opening.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailferry.adapters.imap import Credentials, ImapAccount, TlsOptions
from mailferry.adapters.imap.session import login_capabilities
from mailferry.domain.errors import AuthError
from mailferry.domain.model import Endpoint, Security
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy

pytestmark = pytest.mark.integration

TAGGED = rb"^[^*+]\S* (OK|NO|BAD) "  # not the greeting
CONTINUATION = rb"^\+"
UNTAGGED_CAPABILITY = rb"^\* CAPABILITY "
ENABLED = rb"^\* ENABLED CONDSTORE"


@pytest.fixture
def watched(request) -> Iterator[tuple[Proxy, Endpoint, str]]:
    server = request.getfixturevalue(request.param)
    user, password = request.getfixturevalue("make_user")(server)
    with Proxy(server.host, server.port) as proxy:
        proxy.watch(TAGGED)
        proxy.watch(CONTINUATION)
        proxy.watch(UNTAGGED_CAPABILITY)
        proxy.watch(ENABLED)
        yield proxy, Endpoint(proxy.host, proxy.port, Security.NONE, user), password


# Tagged answers to the opening (login to NAMESPACE; 5 on each before), untagged CAPABILITY lines
# (the greeting's and the login's [CAPABILITY] codes are neither), and what the session must
# know afterwards.
OPENING = {
    "dovecot_dot": (3, 0, "", ".", {"CONDSTORE", "ENABLE", "MOVE"}),
    "cyrus": (3, 0, "INBOX.", ".", {"CONDSTORE", "ENABLE", "NAMESPACE"}),
    "courier": (3, 1, "INBOX.", ".", {"NAMESPACE", "UIDPLUS"}),  # asked, with NAMESPACE
}


@pytest.mark.parametrize("watched", list(OPENING), indirect=True)
def test_opening_and_closing_a_session_costs_few_answers(watched, request):
    proxy, endpoint, password = watched
    answers, listed, prefix, delimiter, post_login = OPENING[
        request.node.callspec.params["watched"]
    ]
    account = ImapAccount.connect(endpoint, Credentials(password))
    opened = proxy.seen(TAGGED)
    try:
        assert len(opened) == answers, opened
        assert [line.split(b" ")[0] for line in opened[-2:]] == [b"mf1", b"mf2"]  # pipelined
        assert len(proxy.seen(UNTAGGED_CAPABILITY)) == listed
        assert not proxy.seen(CONTINUATION)  # SASL-IR, or LOGIN: no "+" waited for
        assert post_login <= account.capabilities  # the post-login list, not the greeting's
        assert (account.personal_prefix, account.delimiter) == (prefix, delimiter)
        assert "INBOX" in {f.name for f in account.list_folders()}  # the session works
        assert len(proxy.seen(ENABLED)) == account.condstore  # enabled where offered
        if account.condstore:
            assert account.status("INBOX").highestmodseq is not None
        answered = len(proxy.seen(TAGGED))
    finally:
        account.close()
    assert proxy.wait_until_idle()
    assert len(proxy.seen(TAGGED)) - answered <= 1  # LOGOUT's OK came or not: nobody waited


@pytest.fixture
def watched_dovecot(dovecot_dot, make_user) -> Iterator[tuple[Proxy, Endpoint, str]]:
    user, password = make_user(dovecot_dot)
    with Proxy(dovecot_dot.host, dovecot_dot.port) as proxy:
        proxy.watch(TAGGED)
        proxy.watch(CONTINUATION)
        proxy.watch(UNTAGGED_CAPABILITY)
        yield proxy, Endpoint(proxy.host, proxy.port, Security.NONE, user), password


def test_greeting_without_capabilities_costs_the_capability_command(watched_dovecot):
    """As Exchange greets: no [CAPABILITY] in the greeting, so it is asked for."""
    proxy, endpoint, password = watched_dovecot
    proxy.replace_next(rb"^\* OK \[CAPABILITY [^\]]*\] ", b"* OK ")
    account = ImapAccount.connect(endpoint, Credentials(password))
    account.close()
    assert len(proxy.seen(TAGGED)) >= 4  # CAPABILITY, AUTHENTICATE, ENABLE, NAMESPACE (LOGOUT)
    assert proxy.seen(UNTAGGED_CAPABILITY)[0].endswith(b" AUTH=PLAIN AUTH=LOGIN")  # pre-login
    assert "CONDSTORE" in account.capabilities


def test_without_sasl_ir_plain_waits_for_the_continuation(watched_dovecot):
    proxy, endpoint, password = watched_dovecot
    proxy.replace_next(rb"SASL-IR ", b"")  # in the greeting only
    account = ImapAccount.connect(endpoint, Credentials(password))
    account.close()
    assert len(proxy.seen(CONTINUATION)) == 1
    assert "CONDSTORE" in account.capabilities


def test_wrong_password_is_refused_in_one_line(watched_dovecot):
    _proxy, endpoint, _password = watched_dovecot
    with pytest.raises(AuthError, match=r"^login refused for \S+ at 127\.0\.0\.1: \[AUTH"):
        ImapAccount.connect(endpoint, Credentials("wrong"))


def test_admin_logs_in_acting_as_the_user_with_sasl_ir(watched_dovecot, dovecot_dot):
    proxy, endpoint, _password = watched_dovecot
    admin = Endpoint(
        endpoint.host, endpoint.port, endpoint.security, endpoint.user, dovecot_dot.master_user
    )
    account = ImapAccount.connect(admin, Credentials(dovecot_dot.master_password))
    try:
        assert account.status("INBOX").exists == 0
    finally:
        account.close()
    assert not proxy.seen(CONTINUATION)


def test_close_does_not_wait_for_the_logout_answer(watched_dovecot):
    """The server's answers are held back for a minute: closing returns at once all the same."""
    proxy, endpoint, password = watched_dovecot
    account = ImapAccount.connect(endpoint, Credentials(password))
    proxy.stall_after(0, 60.0)
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (account.close(), closed.set()), daemon=True)
    closer.start()
    assert closed.wait(10.0), "close() waited for the server"


def test_close_after_the_server_hung_up_raises_nothing(watched_dovecot):
    proxy, endpoint, password = watched_dovecot
    account = ImapAccount.connect(endpoint, Credentials(password))
    proxy.stop()  # every connection dropped
    account.close()
    account.close()  # twice: still quiet


def test_starttls_asks_again_for_what_the_greeting_said(tmp_path: Path, make_user):
    """A greeting's capabilities are used on a plain session; after STARTTLS they are asked for
    again over TLS (RFC 3501 6.2.1): a capability injected into the greeting in clear (here by
    the proxy) is believed on the first and never on the second."""
    with DovecotServer(tmp_path / "tls", ssl=True) as server:
        user, password = make_user(server)
        tls = TlsOptions(ca_file=server.ca_file)
        with Proxy(server.host, server.port) as proxy:
            plain = Endpoint(proxy.host, proxy.port, Security.NONE, user)
            proxy.replace_next(rb"\[CAPABILITY ", b"[CAPABILITY X-FORGED ")
            assert b"X-FORGED" in login_capabilities(plain, tls, 10.0)
            proxy.replace_next(rb"\[CAPABILITY ", b"[CAPABILITY X-FORGED ")
            starttls = Endpoint(proxy.host, proxy.port, Security.STARTTLS, user)
            offered = login_capabilities(starttls, tls, 10.0)
            assert b"X-FORGED" not in offered
            assert b"AUTH=PLAIN" in offered
            account = ImapAccount.connect(starttls, Credentials(password), tls=tls)
            try:
                assert "CONDSTORE" in account.capabilities
                assert account.status("INBOX").exists == 0
            finally:
                account.close()
