"""Every mail message of pst-extractor's OST (in tests/data) pinned by hash as mailferry built it
before its PST reading was made fast (same bytes after: a re-run knows its copies by their hash;
one changed since, on purpose, said where it is pinned),
and the attachments read ahead (``pstahead``) against those read in place: in order, bounded,
given up on without harm; a folder measured ahead (``send_listing``) against its listing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailferry.adapters.files import PstAccount, pstmail
from mailferry.adapters.files.pstahead import ReadAhead
from mailferry.domain.errors import FolderError
from mailferry.domain.ports import ListingAhead

BUILT_BEFORE = {
    ("Deleted Items", 1): "4940f51a530dfa5b10b5ba13030462e342611b1704d6dc573a90eab1ad6166ba",
    ("INBOX", 1): "87f87d6e8ee6b2916e931fd15bb4d1210c037e3996c36a3866aaecfba4d6ee9a",
    ("INBOX", 2): "f4edfb54bf85c367b4fd92d1853192352f22c2d4310800933092ae7ec68d5cf8",
    ("INBOX", 3): "a280da65dfd90e2d0b6130e4c7a61ad58d80007f500cba4ee335115dc4d3ece3",
    ("INBOX", 4): "292a1c4e112203a08bbe6874cea2984cb983cffdba9bececa6b76a35c651275a",
    ("INBOX", 5): "9ef3038aceca617931d0c3564eb3c0ff897b513da5bf030a3192959b447ad60d",
    ("INBOX", 6): "3d872299276a8685f49d525ac0c5ca8cda1a00503ffd85190f5051ab46fc7cb3",
    ("INBOX", 7): "2b310ca8d0b9aaab30acd9dbb1c010db9a4e7bc42b7ffa70c767ce14f85328ac",
    ("INBOX", 8): "c9073ce74405d724c6d5bbabec3b51962a1ef04e627e6a87c261602e97968577",
    ("INBOX", 9): "0318ec2f9f312430f3e06eaca45dc1187871cbf5bc77777b17d765b21d7b5777",
    ("INBOX", 10): "efcad4aaa9cce558927e704b218144435aaf61ad2a983dc6dbf6976b013d26c0",
    ("Sent Items", 1): "d20538478504169a11bff2b855a5e2f7eb99e47d6d1cfe543460de3eccf830b0",
    ("Sent Items", 2): "8bf3b858867c270c88238b275fc762fbe38578c2fa0f90a2aa5550b9e07f0445",
    # Its only body is RTF: built with an empty text part until the RTF was read (domain/rtf.py),
    # "9c91e98e..." before; now with the synchronisation log it holds.
    ("Sync Issues", 1): "0fc9ff1c263b5bbbac19f2ed664a33cabede13ee63ac10b93dd022b0c5f33aa4",
}


def test_every_mail_message_of_the_ost_is_built_byte_for_byte_as_before(ost: Path) -> None:
    account = PstAccount(ost)
    found = {}
    for folder in sorted({name for name, _uid in BUILT_BEFORE}):
        metas = list(account.fetch_meta(folder, message_ids=True))  # read ahead, measured
        for meta, message in zip(metas, account.fetch_messages(folder, metas), strict=True):
            assert meta.size == message.size
            found[folder, meta.uid] = message.sha256
    account.close()
    assert found == BUILT_BEFORE


def _in_place(account: PstAccount, folder: str) -> list[list[pstmail.Attachment]]:
    box = account.listing(folder).folder
    return [
        [pstmail.attachment(item.get_attachment(i)) for i in range(item.number_of_attachments)]
        for item in (box.get_sub_message(n) for n in range(box.number_of_sub_messages))
    ]


@pytest.mark.parametrize(("limit", "readers"), [(1, 1), (1, 2), (1 << 20, 3)])
def test_attachments_read_ahead_are_those_read_in_place(
    ost: Path, limit: int, readers: int
) -> None:
    account = PstAccount(ost)
    expected = _in_place(account, "INBOX")
    assert sum(map(len, expected)) == 22  # attachments of 7 of the 10 messages
    route = account._routes["INBOX"]
    ahead = ReadAhead(ost, route, range(10), limit=limit, readers=readers)
    try:
        assert [ahead.take(index) for index in range(10)] == expected
        assert ahead.take(3) is None  # taken already: the caller reads it itself
    finally:
        ahead.close()
    account.close()


def test_read_ahead_skipped_behind_or_given_up_on_leaves_the_reading_to_the_caller(
    ost: Path,
) -> None:
    account = PstAccount(ost)
    route = account._routes["INBOX"]
    expected = _in_place(account, "INBOX")
    ahead = ReadAhead(ost, route, [0, 1, 2, 3, 4], limit=1, readers=1)
    assert ahead.take(2) == expected[2]  # 0 and 1 skipped (the planner could not open them)
    assert ahead.take(1) is None  # behind: read in place
    assert ahead.take(3) == expected[3]
    ahead.close()  # stops a reader waiting for room
    wrong = ReadAhead(ost, (*route, 99), [0, 1], readers=1)  # no such folder: nothing read
    assert wrong.take(0) is None
    wrong.close()
    account.close()


def test_a_folder_listed_ahead_is_the_listing_measured_in_place(ost: Path) -> None:
    inbox, sent = "INBOX", "Sent Items"
    expected = PstAccount(ost)
    listing = list(expected.fetch_meta(inbox, message_ids=True))
    expected.close()
    account = PstAccount(ost)
    assert isinstance(account, ListingAhead)
    assert account.status_with_listing(inbox) == (account.status(inbox), None)  # not asked
    account.send_listing(inbox)
    account.send_listing(sent)  # one at a time: the first stays
    assert account.status_with_listing(inbox) == (account.status(inbox), listing)
    assert account.listing(inbox).entry(3).size == listing[3].size  # sizes known, as measured
    built = list(account.fetch_messages(inbox, listing))  # from the frames measuring kept
    assert [m.size for m in built] == [m.size for m in listing]
    account.send_listing(inbox)
    assert account.status_with_listing(sent)[1] is None  # another folder's: dropped
    with pytest.raises(FolderError):
        account.send_listing("Not There")
    account.send_listing(sent)
    account.close()  # stops it and waits
