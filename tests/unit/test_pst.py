"""PST sources on the public outlook.pst (libyal test data, CC BY 4.0: ../shared/testdata/pst).

Covered: the folder tree under "Top of Personal Folders" (a non-ASCII folder, roles of Sent,
Deleted, Drafts, Junk), calendar/contacts/tasks/notes/journal left out, a message without
transport headers rebuilt from its properties (From, To, Subject, Date, plain + HTML bodies, 11
attachments), read state, delivery date, deterministic bytes (re-runs and lost state copy
nothing), the rebuilt messages counted in the run's summary, a damaged block reported for its item while the rest is copied.
Speed work: the bytes pinned as built before it, measured size = built size, a kept frame (with
or without the attachments' bytes) and the long way giving the same bytes, the bulk generator and base64 against the stdlib's, a body holding
the placeholder, a subject with MAPI's prefix marker (fake items for the last two).
Not covered (no such item in the file): transport headers, ANSI PSTs, follow-up flags, replied
or forwarded state, embedded-message attachments, password-protected PSTs.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailferry.adapters.files import MaildirAccount, PstAccount, pstmail, pstmime
from mailferry.adapters.files.pst import REBUILT
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import MessageError
from mailferry.service.migrate import Migration, SyncOptions

PST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pst" / "outlook.pst"
if not PST.exists():
    PST = Path("/work/shared/testdata/pst/outlook.pst")
pytestmark = pytest.mark.skipif(not PST.exists(), reason="the shared PST test data is not here")
WELCOME = dt.datetime(2007, 4, 29, 22, 27, 33, 593000, tzinfo=dt.UTC)


def fetched(account, folder):
    metas = list(account.fetch_meta(folder, message_ids=True))
    return metas, list(account.fetch_messages(folder, metas))


def test_folder_tree_with_roles_and_without_calendars_or_contacts():
    account = PstAccount(PST)
    folders = {f.name: f.flags for f in account.list_folders()}
    assert {"INBOX", "Sent Items", "Deleted Items", "Drafts", "Junk E-mail", "收件箱"} <= set(
        folders
    )
    assert folders["Sent Items"] == {"\\Sent"}
    assert folders["Deleted Items"] == {"\\Trash"}
    assert folders["Junk E-mail"] == {"\\Junk"}
    assert not {"Calendar", "Contacts", "Tasks", "Notes", "Journal"} & set(folders)
    assert account.status("Recovered_Group2").exists == 1
    account.close()


def test_a_message_without_transport_headers_is_rebuilt_with_bodies_and_attachments():
    account = PstAccount(PST)
    [meta], [message] = fetched(account, "INBOX")
    assert meta.flags == {"\\Seen"}
    assert meta.internaldate == WELCOME
    data = message.body.read()
    assert meta.size == len(data)
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["From"] == "Outlook 2003 Team <olteam@microsoft.com>"
    assert "New Outlook User" in parsed["To"]  # a name without an address, as the PST has it
    assert parsed["Subject"] == "Welcome to Microsoft Office Outlook 2003"
    assert parsed["Date"].datetime == WELCOME.replace(microsecond=0)
    assert (
        "Thank you for using Microsoft® Office Outlook® 2003"
        in parsed.get_body(("plain",)).get_content()
    )
    assert parsed.get_body(("html",)) is not None
    attachments = list(parsed.iter_attachments())
    assert len(attachments) == 11
    assert attachments[0].get_filename() == "1.jpg"
    assert attachments[0].get_content()[:3] == b"\xff\xd8\xff"  # a JPEG, bytes as stored
    again = PstAccount(PST)
    assert fetched(again, "INBOX")[1][0].sha256 == message.sha256  # the same bytes every time
    account.close()
    again.close()


def test_pst_to_maildir_then_rerun_and_lost_state_copy_nothing(tmp_path):
    target = MaildirAccount(tmp_path / "out", writable=True)
    store = MemoryStateStore()

    def run(state):
        source = PstAccount(PST)
        try:
            return Migration(source, target, state, "pair", SyncOptions()).run()
        finally:
            source.close()

    first = run(store)
    assert (first.messages_copied, first.failures) == (2, [])
    assert {n.reason for n in first.notes} == {REBUILT}  # neither kept transport headers
    assert sum(n.messages for n in first.notes) == 2
    assert {f.name for f in target.list_folders()} >= {"INBOX", "收件箱", "Recovered_Group2"}
    again = run(store)
    assert (again.messages_copied, again.notes) == (0, [])
    assert run(MemoryStateStore()).messages_copied == 0


def test_a_damaged_block_fails_its_item_only(tmp_path):
    damaged = tmp_path / "damaged.pst"
    shutil.copyfile(PST, damaged)
    with damaged.open("r+b") as out:  # a block of Recovered_Group2's message (found by trying)
        out.seek(131072)
        out.write(b"\xff" * 4096)
    account = PstAccount(damaged)
    _metas, [inbox] = fetched(account, "INBOX")
    assert not isinstance(inbox, MessageError)
    _metas, [broken] = fetched(account, "Recovered_Group2")
    assert isinstance(broken, MessageError)
    assert str(damaged) in broken.reason
    assert "damaged item" in broken.reason
    account.close()


# What mailferry built from outlook.pst before its PST building was made fast: the same bytes
# now, or a re-run after an upgrade would not know its own copies by their content hash.
BUILT_BEFORE = {
    "INBOX": "9f6b999b2e1bac434cc1241f65bda72c5f4776ea84180b97771ad9acf3fef3e3",
    "Recovered_Group2": "6996c234be01f7e50f252b92b11667634c1b83a72f532dbee69ff090fbdb9fd8",
}


def test_messages_are_built_byte_for_byte_as_before():
    account = PstAccount(PST)
    for folder, sha256 in BUILT_BEFORE.items():  # measured, then built from the kept frame
        [meta], [message] = fetched(account, folder)
        assert (message.sha256, meta.size) == (sha256, message.size)
        [message] = account.fetch_messages(folder, [meta])  # no frame kept: the long way
        assert message.sha256 == sha256
    account.close()


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 114, 115, 4000, 58368, 58369, 116735])
def test_bulk_generator_writes_what_the_stock_one_does(size):
    data = bytes(range(256)) * (size // 256 + 1)
    body = EmailMessage(policy=email.policy.SMTP)
    body["Subject"] = "a subject"
    body.set_content("plain\nlines\r\nmixed\rends\n")
    body.add_alternative("<p>html</p>\n" * 50, subtype="html")
    body.add_attachment(data[:size], maintype="application", subtype="pdf", filename="a.pdf")
    stock = body.as_bytes(policy=email.policy.SMTP)
    body.get_payload()[-1].set_payload(pstmime.base64_lines(data[:size]))
    assert pstmail.flatten(body) == stock


class _Fake:
    """Just enough of a pypff item or attachment for ``pstmail`` (no record sets)."""

    number_of_record_sets = 0
    recipients = None
    html_body = None

    def __init__(self, body=b"", attachments=(), data=b""):
        self.identifier = 7
        self.plain_text_body = body
        self.attachments = list(attachments)
        self.number_of_attachments = len(self.attachments)
        self.size = len(data)
        self._data = data

    def get_attachment(self, index):
        return self.attachments[index]

    def read_buffer(self, size):
        return self._data[:size]


def test_a_body_holding_the_attachment_placeholder_is_built_the_long_way_alike():
    attachments = [_Fake(data=b"\x00\x01" * 500), _Fake(data=b"")]
    plain = _Fake(b"text\n", attachments)
    built = pstmail.build(plain, {})
    marker = built.data.split(b"boundary=")[1].split(b"_0")[0].strip(b'"') + b"_data"
    tricky = _Fake(b"text\n" + marker + b"\n", attachments)  # same identifier, same marker
    data = pstmail.build(tricky, {}).data
    assert data.replace(marker + b"\r\n", b"", 1) == built.data
    assert pstmail.measure(tricky, {}).size == len(data)
    assert pstmail.measure(plain, {}).size == len(built.data)


def test_a_kept_frame_builds_the_message_without_reading_its_attachments_again():
    attachments = [_Fake(data=b"\x00\x01" * 500), _Fake(data=b"")]
    expected = pstmail.build(_Fake(b"text\n", attachments), {}).data
    item = _Fake(b"text\n", attachments)
    found = pstmail.measure(item, {})
    item.get_attachment = None  # libpff is not asked again
    assert pstmail.build(item, {}, found.frame).data == expected
    assert found.size == len(expected)
    assert pstmail.build(_Fake(b"text\n", attachments), {}, found.frame.bare()).data == expected


class _Entry:
    value_type = 0x001F  # PtypString (Unicode), as a Unicode PST holds it

    def __init__(self, value):
        self.data = value.encode()
        self.data_as_string = value


def test_a_subject_with_mapis_prefix_marker_read_as_a_line_break_is_built():
    props = {pstmail.SUBJECT: _Entry("\x01\x0bAccepted: meeting\nfrom Ed")}
    data = pstmail.build(_Fake(b"text\n"), props).data
    assert b"\r\nSubject: Accepted: meeting from Ed\r\n" in data
    assert (
        pstmail.subject({pstmail.SUBJECT: _Entry("\x01\x05RE: x")}) == "\x01\x05RE: x"
    )  # as before
