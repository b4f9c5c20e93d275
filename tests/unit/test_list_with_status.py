"""A run's listing brings the statuses with it (issue #17 rule 2): where LIST-STATUS is offered,
the one LIST a side asks for the folders' STATUS too (RFC 5819 section 2), and the statuses the
run asks right after are taken from it; after any other command they are asked again. A server
refusing the combination is listed as before. Scripted server: what the client wrote is asserted.

INBOX is opened (EXAMINE) before a LIST asking STATUS and closed after it, in the same round trip
(statuses.py: Dovecot on Maildir re-reads a big INBOX's uidlist for each STATUS of it otherwise).
"""

from __future__ import annotations

import pytest

from mailferry.adapters.imap.account import ImapAccount
from mailferry.adapters.imap.session import Credentials
from mailferry.domain.errors import ThrottledError
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
ONLY_STATUS = b'LIST "" "*" RETURN (STATUS (UIDVALIDITY UIDNEXT MESSAGES))'
OK = b"TAG OK done\r\n"
EXAMINED = (
    b"* FLAGS (\\Seen)\r\n* 40 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 41] ok\r\n"
    b"* OK [HIGHESTMODSEQ 90] ok\r\nTAG OK [READ-ONLY] done\r\n"
)


def around(listing: bytes, examine: bytes = EXAMINED) -> tuple[bytes, bytes, bytes]:
    """The replies to EXAMINE INBOX, the LIST and the CLOSE after it."""
    return examine, listing, OK


def inbox_open(listing: bytes) -> list[bytes]:
    """The commands of one LIST asking STATUS, INBOX open around it (no UNSELECT offered)."""
    return [b"EXAMINE INBOX", listing, b"CLOSE"]


def session(*replies: bytes) -> tuple[ImapAccount, ScriptedImap]:
    imap = ScriptedImap(DOVECOT, [LOGIN, NAMESPACE, *replies])
    client = ScriptedClient(imap)
    _login(client, ENDPOINT, Credentials("pw"))
    return ImapAccount(client, readonly=True), imap


def commands(imap: ScriptedImap) -> list[bytes]:
    """What the client wrote after logging in and asking NAMESPACE, without the tags."""
    return [line.split(b" ", 1)[1] for line in imap.lines[2:]]


def test_the_statuses_asked_after_the_listing_come_with_it_once():
    account, imap = session(*around(LISTED + OK), *around(LIST_STATUS + OK))
    folders = account.list_folders()
    assert [(f.name, f.subscribed) for f in folders] == [
        ("INBOX", True),
        ("Old mail", False),
        ("Archive", False),
    ]
    found = account.statuses(["INBOX", "Old mail", "Archive"])
    assert commands(imap) == inbox_open(WITH_STATUS)  # nothing more was asked
    assert (found["INBOX"].uidnext, found["Old mail"].exists) == (12, 2)
    assert "Archive" not in found  # \Noselect: no status, its own STATUS would say why
    assert account.statuses(["INBOX"])["INBOX"].uidnext == 13  # taken once, then asked
    assert commands(imap)[3:] == inbox_open(ONLY_STATUS)


def test_after_any_other_command_the_statuses_are_asked_again():
    examined = b"* 11 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 12] ok\r\nTAG OK done\r\n"
    account, imap = session(*around(LISTED + OK), examined, LIST_STATUS + OK)
    account.list_folders()
    account.status("INBOX")  # an EXAMINE: any command may have changed what was listed
    found = account.statuses(["INBOX"])
    assert commands(imap) == [
        *inbox_open(WITH_STATUS),
        b'EXAMINE "INBOX"',
        ONLY_STATUS,  # a folder is selected: the LIST alone, nothing closed
    ]
    assert found["INBOX"].uidnext == 13  # the new answer, not the listing's 12


def test_a_server_refusing_status_in_the_listing_is_listed_without_it():
    account, imap = session(
        *around(b"TAG BAD unknown return option\r\n"),
        PLAIN_LIST + OK,
        *around(LIST_STATUS + OK),
    )
    assert [f.name for f in account.list_folders()] == ["INBOX"]
    found = account.statuses(["INBOX"])
    assert commands(imap) == [
        *inbox_open(WITH_STATUS),
        b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)',
        *inbox_open(ONLY_STATUS),
    ]
    assert found["INBOX"].uidnext == 13


def test_a_server_leaving_the_open_inbox_out_gives_its_status_by_the_examine():
    """RFC 5819 lets a server leave the selected folder out: INBOX's status is then the
    EXAMINE's (EXISTS as MESSAGES), only the items asked (HIGHESTMODSEQ was not)."""
    listed = b'* LIST (\\HasNoChildren) "/" INBOX\r\n* LIST (\\HasNoChildren) "/" Sent\r\n'
    listed += b"* STATUS Sent (UIDVALIDITY 3 UIDNEXT 5 MESSAGES 4)\r\n"
    account, imap = session(*around(listed + OK))
    account.list_folders()
    found = account.statuses(["INBOX", "Sent"])
    assert commands(imap) == inbox_open(WITH_STATUS)
    inbox = found["INBOX"]
    assert (inbox.uidvalidity, inbox.uidnext, inbox.exists) == (7, 41, 40)
    assert inbox.highestmodseq is None
    assert found["Sent"].uidnext == 5


def test_the_listing_s_own_inbox_status_wins_over_the_examine_s():
    account, _imap = session(*around(LISTED + OK))
    account.list_folders()
    assert account.statuses(["INBOX"])["INBOX"].uidnext == 12  # not the EXAMINE's 41


def test_an_inbox_that_cannot_be_opened_leaves_the_listing_as_it_was():
    refused = b"TAG NO [NONEXISTENT] Mailbox doesn't exist\r\n"
    account, imap = session(refused, LISTED + OK, b"TAG BAD No mailbox selected\r\n")
    assert [f.name for f in account.list_folders()][:2] == ["INBOX", "Old mail"]
    found = account.statuses(["INBOX", "Old mail"])
    assert commands(imap) == inbox_open(WITH_STATUS)
    assert found["INBOX"].uidnext == 12 and found["Old mail"].exists == 2


def test_unselect_closes_the_inbox_where_offered():
    login = LOGIN.replace(b"LIST-STATUS]", b"LIST-STATUS UNSELECT]")
    imap = ScriptedImap(DOVECOT, [login, NAMESPACE, *around(LISTED + OK)])
    client = ScriptedClient(imap)
    _login(client, ENDPOINT, Credentials("pw"))
    ImapAccount(client, readonly=False).list_folders()
    assert commands(imap) == [b"EXAMINE INBOX", WITH_STATUS, b"UNSELECT"]


def test_an_examine_asked_to_slow_down_is_honoured():
    """Exchange's way of throttling (tests/integration/test_faults.py): the run waits and lists
    again, as it would for any command."""
    throttled = (
        b"TAG NO [THROTTLED] Request is throttled. Suggested Backoff Time: 300 milliseconds\r\n"
    )
    account, _imap = session(throttled, LISTED + OK, OK)
    with pytest.raises(ThrottledError) as caught:
        account.list_folders()
    assert caught.value.wait == pytest.approx(0.3)
