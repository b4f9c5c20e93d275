"""A folder's status and listing in one round trip (adapters/imap/examine.py), on every server:
the listing must be exactly what ``fetch_meta`` lists, or no listing at all."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from mailferry.domain.errors import FolderError
from mailferry.domain.model import AppendRequest
from mailferry.domain.ports import ListingAhead
from tests.integration.conftest_helpers import open_sessions

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2019, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
FOLDER = "Ahead Prüfung"  # a space and a non-ASCII letter: quoted, modified UTF-7


def _request(n: int) -> AppendRequest:
    head = f"Message-ID: <ahead.{n}@x>\r\n" if n % 3 else ""  # every third has none
    if n == 4:  # a Message-ID header folded over two lines, as some clients write it
        head = "Message-ID:\r\n <ahead.folded.4@x>\r\n"
    data = f"{head}Subject: ahead {n}\r\n\r\nbody {n}\r\n".encode()
    flags = frozenset({"\\Seen", "$Label1"} if n % 2 else {"\\Flagged"})
    return AppendRequest(n, io.BytesIO(data), len(data), flags, WHEN + dt.timedelta(hours=n))


@pytest.fixture(params=["dovecot_dot", "dovecot_prefixed", "cyrus", "courier"])
def accounts(request, make_user):
    """(writable, read-only) sessions of one user, as mailferry opens a target and a source."""
    server = request.getfixturevalue(request.param)
    writer, reader = open_sessions(server, *make_user(server))
    yield writer, reader, request.param
    writer.close()
    reader.close()


def test_the_listing_read_with_the_status_is_the_folders_listing(accounts):
    writer, reader, server = accounts
    writer.create_folder(FOLDER)
    writer.append_batch(FOLDER, [_request(n) for n in range(1, 9)])
    assert isinstance(reader, ListingAhead)
    status, listing = reader.status_with_listing(FOLDER)
    assert status == reader.status(FOLDER)
    if server == "courier":  # its EXAMINE says no UIDNEXT: STATUS is asked after, so the
        assert listing is None  # listing, older than the status, is not kept
        return
    assert listing is not None
    assert listing == list(reader.fetch_meta(FOLDER, message_ids=True))
    assert len(listing) == 8
    assert [m.message_id is None for m in listing] == [n % 3 == 0 for n in range(1, 9)]
    assert "<ahead.folded.4@x>" in {m.message_id for m in listing}
    # The session is left on the folder: its bodies are read without selecting it again.
    fetched = list(reader.fetch_messages(FOLDER, listing[:2]))
    assert [f.uid for f in fetched] == [m.uid for m in listing[:2]]
    for message in fetched:
        message.body.close()


def test_an_empty_folder_is_an_empty_listing(accounts):
    writer, reader, server = accounts
    writer.create_folder(FOLDER)
    status, listing = reader.status_with_listing(FOLDER)
    assert (status.exists, listing) == (0, None if server == "courier" else [])


def test_a_missing_folder_is_a_folder_error_and_the_session_goes_on(accounts):
    _writer, reader, _server = accounts
    with pytest.raises(FolderError):
        reader.status_with_listing("Not There")
    assert reader.status("INBOX").exists == 0


def test_a_target_session_answers_the_status_alone(accounts):
    writer, _reader, _server = accounts
    writer.create_folder(FOLDER)
    writer.append_batch(FOLDER, [_request(1)])
    status, listing = writer.status_with_listing(FOLDER)
    assert (status.exists, listing) == (1, None)


def test_changes_since_a_modseq_are_counted_without_listing_them(accounts):
    """ESEARCH COUNT with MODSEQ (changes.py) agrees with the CHANGEDSINCE listing it stands in
    for; a server without CONDSTORE or ESEARCH says it cannot count."""
    writer, reader, server = accounts
    writer.create_folder(FOLDER)
    writer.append_batch(FOLDER, [_request(n) for n in range(1, 7)])
    before = reader.status(FOLDER)
    if not reader.condstore or before.highestmodseq is None:
        assert reader.count_changed(FOLDER, 1) is None
        return
    assert reader.count_changed(FOLDER, before.highestmodseq) == 0
    uids = [m.uid for m in reader.fetch_meta(FOLDER)]
    writer.store_flags(FOLDER, [(uid, frozenset({"\\Answered"})) for uid in uids[:4]])
    counted = reader.count_changed(FOLDER, before.highestmodseq)
    listed = list(reader.fetch_flags(FOLDER, changed_since=before.highestmodseq))
    assert counted == len(listed) == 4, server


def test_uid_marks_and_a_wide_uid_window_on_a_sparse_folder(accounts):
    """A folder with most UIDs expunged: the UIDs of every n-th message (the windows' starts,
    windows.marked_spans) and a window spanning thousands of UIDs listed in one command."""
    writer, reader, server = accounts
    writer.append_batch("INBOX", [_request(n) for n in range(1, 13)])
    uids = [m.uid for m in writer.fetch_meta("INBOX")]
    doomed = [uid for i, uid in enumerate(uids) if i % 3]  # keep every third
    client = writer._client
    client.select_folder(writer._physical("INBOX"))
    client.delete_messages(doomed)
    client.expunge()
    kept = [uid for uid in uids if uid not in doomed]
    assert reader.uid_marks("INBOX", 2) == kept[1::2], server
    wide = range(1, 5_000)  # far more UIDs than META_CHUNK: one UID FETCH lo:hi
    assert list(reader.fetch_meta("INBOX", wide)) == list(reader.fetch_meta("INBOX")), server


def test_a_listing_asked_ahead_is_the_same_and_any_other_command_reads_it_first(accounts):
    writer, reader, server = accounts
    writer.create_folder(FOLDER)
    writer.append_batch(FOLDER, [_request(n) for n in range(1, 6)])
    writer.create_folder("Other")
    writer.append_batch("Other", [_request(n) for n in range(6, 8)])
    expected = reader.status_with_listing(FOLDER)
    reader.send_listing(FOLDER)  # answered a round trip later, read by the next command
    assert reader.status_with_listing(FOLDER) == expected
    # Asked ahead for one folder, then another command: the answers in between are read
    # first, and every command after sees its own.
    reader.send_listing(FOLDER)
    assert [m.uid for m in reader.fetch_meta("Other")] == [1, 2]
    reader.send_listing(FOLDER)
    status, listing = reader.status_with_listing("Other")
    assert status.exists == 2
    assert listing is None if server == "courier" else len(listing or []) == 2
    reader.send_listing("Not There")  # its refusal is read, and is nobody's failure
    assert reader.status(FOLDER).exists == 5
    reader.send_listing("Not There")
    with pytest.raises(FolderError):
        reader.status_with_listing("Not There")
    writer.send_listing(FOLDER)  # a target asks nothing ahead: its SELECT is read-write
    assert writer.status(FOLDER).exists == 5
