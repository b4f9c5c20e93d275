"""A run's listing brings the statuses with it (issue #17 rule 2): where LIST-STATUS is offered,
the one LIST a side asks for the folders' STATUS too (RFC 5819 section 2), and the statuses the
run asks right after are taken from it; after any other command they are asked again. A server
refusing the combination is listed as before. Scripted server: what the client wrote is asserted.
"""

from __future__ import annotations

from mailferry.adapters.imap.account import ImapAccount
from mailferry.adapters.imap.session import Credentials
from tests.unit.test_session_opening import DOVECOT, ENDPOINT, ScriptedClient, ScriptedImap, _login

LOGIN = (
    b"TAG OK [CAPABILITY IMAP4rev1 LITERAL+ NAMESPACE LIST-EXTENDED SPECIAL-USE LIST-STATUS]"
    b" Logged in\r\n"
)
NAMESPACE = b'* NAMESPACE (("" "/")) NIL NIL\r\nTAG OK done\r\n'
LISTED = (
    b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n'
    b"* STATUS INBOX (UIDVALIDITY 7 UIDNEXT 12 MESSAGES 11)\r\n"
    b'* LIST (\\HasNoChildren) "/" "Old mail"\r\n'
    b'* STATUS "Old mail" (UIDVALIDITY 8 UIDNEXT 3 MESSAGES 2)\r\n'
    b'* LIST (\\Noselect \\HasChildren) "/" Archive\r\n'
)
PLAIN_LIST = b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX\r\n'
LIST_STATUS = (
    b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
    b"* STATUS INBOX (UIDVALIDITY 7 UIDNEXT 13 MESSAGES 12)\r\n"
)
WITH_STATUS = (
    b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (UIDVALIDITY UIDNEXT MESSAGES))'
)


def session(*replies: bytes) -> tuple[ImapAccount, ScriptedImap]:
    imap = ScriptedImap(DOVECOT, [LOGIN, NAMESPACE, *replies])
    client = ScriptedClient(imap)
    _login(client, ENDPOINT, Credentials("pw"))
    return ImapAccount(client, readonly=True), imap


def commands(imap: ScriptedImap) -> list[bytes]:
    """What the client wrote after logging in and asking NAMESPACE, without the tags."""
    return [line.split(b" ", 1)[1] for line in imap.lines[2:]]


def test_the_statuses_asked_after_the_listing_come_with_it_once():
    account, imap = session(LISTED + b"TAG OK done\r\n", LIST_STATUS + b"TAG OK done\r\n")
    folders = account.list_folders()
    assert [(f.name, f.subscribed) for f in folders] == [
        ("INBOX", True),
        ("Old mail", False),
        ("Archive", False),
    ]
    found = account.statuses(["INBOX", "Old mail", "Archive"])
    assert commands(imap) == [WITH_STATUS]  # nothing more was asked
    assert (found["INBOX"].uidnext, found["Old mail"].exists) == (12, 2)
    assert "Archive" not in found  # \Noselect: no status, its own STATUS would say why
    assert account.statuses(["INBOX"])["INBOX"].uidnext == 13  # taken once, then asked
    assert commands(imap)[1:] == [b'LIST "" "*" RETURN (STATUS (UIDVALIDITY UIDNEXT MESSAGES))']


def test_after_any_other_command_the_statuses_are_asked_again():
    examined = b"* 11 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 12] ok\r\nTAG OK done\r\n"
    account, imap = session(LISTED + b"TAG OK done\r\n", examined, LIST_STATUS + b"TAG OK done\r\n")
    account.list_folders()
    account.status("INBOX")  # an EXAMINE: any command may have changed what was listed
    found = account.statuses(["INBOX"])
    assert commands(imap) == [
        WITH_STATUS,
        b'EXAMINE "INBOX"',
        b'LIST "" "*" RETURN (STATUS (UIDVALIDITY UIDNEXT MESSAGES))',
    ]
    assert found["INBOX"].uidnext == 13  # the new answer, not the listing's 12


def test_a_server_refusing_status_in_the_listing_is_listed_without_it():
    account, imap = session(
        b"TAG BAD unknown return option\r\n",
        PLAIN_LIST + b"TAG OK done\r\n",
        LIST_STATUS + b"TAG OK done\r\n",
    )
    assert [f.name for f in account.list_folders()] == ["INBOX"]
    found = account.statuses(["INBOX"])
    assert commands(imap) == [
        WITH_STATUS,
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)',
        b'LIST "" "*" RETURN (STATUS (UIDVALIDITY UIDNEXT MESSAGES))',
    ]
    assert found["INBOX"].uidnext == 13
