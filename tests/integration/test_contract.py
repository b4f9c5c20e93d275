"""One contract, many implementations: the in-memory fake and the file targets (Maildir, mbox)
must behave like a real Dovecot where it matters."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from mailferry.adapters.files import FileAccount, MboxAccount, open_files
from mailferry.adapters.imap import Credentials, ImapAccount
from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.domain.errors import FolderError
from mailferry.domain.model import AppendRequest, Endpoint, Security
from mailferry.domain.ports import FolderSetup

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2013, 7, 14, 9, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5)))


def body(n: int) -> bytes:
    return f"Message-ID: <c{n}@x>\r\nSubject: contract {n}\r\n\r\nhello {n}\r\n".encode()


def append_request(n: int, flags=("\\Seen",)) -> AppendRequest:
    data = body(n)
    return AppendRequest(n, io.BytesIO(data), len(data), frozenset(flags), WHEN)


@pytest.fixture(
    params=["memory", "maildir", "mbox", "dovecot", "dovecot_prefixed", "cyrus", "courier"]
)
def account(request, make_user, tmp_path):
    """Real servers through NamespacedAccount, as mailferry opens them (logical folder names);
    file targets as ``maildir://`` and ``mbox://`` open them."""
    if request.param == "memory":
        yield MemoryAccount(MemoryServer(delimiter="."))
        return
    if request.param in {"maildir", "mbox"}:
        yield open_files(request.param, tmp_path / "files", writable=True)
        return
    server = request.getfixturevalue("dovecot_dot" if request.param == "dovecot" else request.param)
    user, password = make_user(server)
    endpoint = Endpoint("127.0.0.1", server.port, Security.NONE, user)
    acc = NamespacedAccount.connect(endpoint, Credentials(password))
    yield acc
    acc.close()


def test_delimiter(account):
    assert account.delimiter == ("/" if isinstance(account, MboxAccount) else ".")


def test_create_is_idempotent_and_listed(account):
    account.create_folder("Contract")
    account.create_folder("Contract")
    account.subscribe("Contract")
    names = {f.name: f for f in account.list_folders()}
    assert "Contract" in names
    assert names["Contract"].subscribed


def test_folders_are_listed_and_created_without_the_namespace_prefix(account):
    """Courier and Cyrus refuse a top-level "Projects" (their folders are "INBOX.Projects"): the
    account must add its personal prefix on the way out and strip it from LIST."""
    account.create_folder("Projects")
    account.create_folder(f"Projects{account.delimiter}2024")
    account.append_batch(f"Projects{account.delimiter}2024", [append_request(10)])
    names = {f.name for f in account.list_folders()}
    assert {"INBOX", "Projects", f"Projects{account.delimiter}2024"} <= names
    assert not any(n.upper().startswith("INBOX" + account.delimiter) for n in names)
    assert account.status(f"Projects{account.delimiter}2024").exists == 1


def test_status_of_missing_folder_is_a_folder_error(account):
    with pytest.raises(FolderError):
        account.status("Does-Not-Exist")


def test_one_extended_list_says_what_list_and_lsub_say(account):
    """LIST RETURN (SUBSCRIBED CHILDREN SPECIAL-USE) where offered (Dovecot, Cyrus): the same folders,
    flags (special-use included) and subscriptions as LIST and LSUB."""
    d = account.delimiter
    for name in ("Ext", f"Ext{d}Sub", "Sent", "Plain"):
        account.create_folder(name)
    account.subscribe(f"Ext{d}Sub")
    account.subscribe("Sent")
    listed = sorted(account.list_folders(), key=lambda f: f.name)
    if isinstance(account, ImapAccount):
        account.without_capabilities(["LIST-EXTENDED"])
    assert listed == sorted(account.list_folders(), key=lambda f: f.name)
    assert {f.name for f in listed if f.subscribed} >= {f"Ext{d}Sub", "Sent"}
    if not isinstance(account, FileAccount):  # files know no subscriptions: all are
        assert "Plain" not in {f.name for f in listed if f.subscribed}


def test_statuses_of_many_folders_answer_as_status_does(account):
    """One LIST-STATUS (Dovecot, Cyrus), pipelined STATUS (Courier, or with LIST-STATUS masked):
    the same answers as one STATUS per folder; a folder that does not exist is left out."""
    d = account.delimiter
    names = ["INBOX", "Many", f"Many{d}Deep", f"Many{d}Deep{d}Er", "Entwürfe", "Odd (name) & more"]
    for name in names[1:]:
        account.create_folder(name)
    account.append_batch(f"Many{d}Deep", [append_request(1), append_request(2)])
    ways = [account]
    if isinstance(account, ImapAccount) and "LIST-STATUS" in account.capabilities:
        ways.append("pipelined")
    for way in ways:
        if way == "pipelined":
            account.without_capabilities(["LIST-STATUS"])
        found = account.statuses([*names, "Does-Not-Exist"])
        assert sorted(found) == sorted(names), way
        for name in names:  # Courier gives an empty folder a new UIDVALIDITY at every STATUS
            one = account.status(name)
            assert (found[name].exists, found[name].uidnext) == (one.exists, one.uidnext), name
        deep = found[f"Many{d}Deep"]
        assert (deep.exists, deep.uidvalidity) == (2, account.status(f"Many{d}Deep").uidvalidity)
        assert (deep.highestmodseq is not None) == account.condstore


def test_statuses_after_a_listing_are_those_of_the_folders_as_they_are_now(account):
    """A LIST may bring every folder's status with it (``ImapAccount._list_extended``); the
    statuses asked right after are those, and after any write they are asked anew: never the
    listing's, once a folder was made or filled since."""
    account.create_folder("Listed")
    account.append_batch("Listed", [append_request(1)])
    account.list_folders()
    assert account.statuses(["Listed"])["Listed"].exists == 1
    account.list_folders()
    account.append_batch("Listed", [append_request(2)])  # written after the listing
    account.create_folder("Later")
    found = account.statuses(["Listed", "Later"])
    assert (found["Listed"].exists, found["Later"].exists) == (2, 0), found
    assert found["Listed"].uidnext == account.status("Listed").uidnext


def test_append_assigns_uids_from_uidnext_and_keeps_date_flags_bytes(account):
    account.create_folder("A")
    before = account.status("A")
    results = account.append_batch(
        "A", [append_request(1), append_request(2, ("$Label1", "\\Flagged"))]
    )
    assert [r.ok for r in results] == [True, True]
    assert [r.target_uid for r in results] == [before.uidnext, before.uidnext + 1]
    after = account.status("A")
    assert after.uidnext == before.uidnext + 2
    assert after.exists == 2
    # A file target's UIDVALIDITY is a digest of its listing (adapters/files/account.py): it moves
    # with every append, and the appends report where it went (as APPENDUID does on a server).
    assert after.uidvalidity == (results[-1].target_uidvalidity or before.uidvalidity)
    if not isinstance(account, FileAccount):
        assert after.uidvalidity == before.uidvalidity
    metas = list(account.fetch_meta("A", message_ids=True))
    assert [m.message_id for m in metas] == ["<c1@x>", "<c2@x>"]
    assert metas[1].flags == {"$Label1", "\\Flagged"}
    assert metas[0].internaldate == WHEN
    assert metas[0].size == len(body(1))
    fetched = list(account.fetch_messages("A", metas))
    assert [f.body.read() for f in fetched] == [body(1), body(2)]


def test_fetch_meta_for_given_uids_skips_missing(account):
    account.create_folder("B")
    [r] = account.append_batch("B", [append_request(3)])
    metas = list(account.fetch_meta("B", [r.target_uid, r.target_uid + 50]))
    assert [m.uid for m in metas] == [r.target_uid]


def test_flags_changed_since_and_store(account):
    account.create_folder("C")
    results = account.append_batch("C", [append_request(4), append_request(5)])
    status = account.status("C")
    if isinstance(account, ImapAccount) and "CONDSTORE" not in account.capabilities:
        pytest.skip("no CONDSTORE on this server (Courier)")
    if isinstance(account, FileAccount):  # no mod-sequences: every message is listed
        account.store_flags("C", [(results[1].target_uid, frozenset({"\\Answered", "Work"}))])
        assert dict(account.fetch_flags("C")) == {
            results[0].target_uid: {"\\Seen"},
            results[1].target_uid: {"\\Answered", "Work"},
        }
        assert account.status("C").uidvalidity == status.uidvalidity
        return
    assert account.condstore
    account.store_flags("C", [(results[1].target_uid, frozenset({"\\Answered", "Work"}))])
    changed = dict(account.fetch_flags("C", changed_since=status.highestmodseq))
    assert changed == {results[1].target_uid: frozenset({"\\Answered", "Work"})}
    everything = dict(account.fetch_flags("C"))
    assert everything[results[0].target_uid] == {"\\Seen"}
    assert account.status("C").highestmodseq > status.highestmodseq


def test_permanent_flags_allow_keywords(account):
    account.create_folder("D")
    assert "\\*" in account.permanent_flags("D")


def test_empty_folder_reads_as_empty(account):
    account.create_folder("E")
    assert list(account.fetch_meta("E")) == []
    assert list(account.fetch_flags("E")) == []


def test_a_refused_message_in_a_burst_fails_alone(account, request):
    """With MULTIAPPEND the server refuses the whole command; the adapter must find the one culprit."""
    if request.node.callspec.params["account"] == "courier":
        pytest.skip("Courier stores an empty message: nothing in this burst is refused")
    account.create_folder("F")
    empty = AppendRequest(99, io.BytesIO(b""), 0, frozenset(), WHEN)
    results = account.append_batch("F", [append_request(6), empty, append_request(7)])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].reason
    assert [m.message_id for m in account.fetch_meta("F", message_ids=True)] == ["<c6@x>", "<c7@x>"]


def test_a_profile_can_mask_capabilities(dovecot_dot, make_user):
    user, password = make_user(dovecot_dot)
    acc = ImapAccount.connect(
        Endpoint("127.0.0.1", dovecot_dot.port, Security.NONE, user), Credentials(password)
    )
    try:
        assert acc.condstore
        acc.without_capabilities({"multiappend", "CONDSTORE"})
        assert "MULTIAPPEND" not in acc.capabilities
        assert not acc.condstore
        acc.create_folder("M")
        assert acc.status("M").highestmodseq is None  # no CONDSTORE item is asked for
        results = acc.append_batch(
            "M", [append_request(8), append_request(9)]
        )  # pipelined singles instead
        assert [r.ok for r in results] == [True, True]
    finally:
        acc.close()


def test_folders_set_up_in_batches_as_one_by_one(account):
    """``FolderSetup`` (pipelined CREATE and SUBSCRIBE): parents before children, an existing
    folder is no refusal, every name logical as for ``create_folder``."""
    if not isinstance(account, FolderSetup):
        pytest.skip("sets folders up one by one")
    account.create_folder("Batch")
    names = ["Batch", "Batch.Child", "Batch.Child.Grandchild", "Other"]
    assert account.create_folders(names) == {}
    assert account.subscribe_folders(names) == {}
    listed = {f.name: f for f in account.list_folders()}
    assert {name: listed[name].subscribed for name in names} == dict.fromkeys(names, True)
