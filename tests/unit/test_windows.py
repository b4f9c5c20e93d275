"""Folder passes in windows of source UIDs (service/windows.py) and the temporary listing of the
target that lost-state matching queries (adapters/store/listing.py), on the in-memory fakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.adapters.store.listing import TargetListing
from mailferry.domain.model import FolderStatus
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.progress import NoProgress
from mailferry.service.windows import Span, marked_spans, spans
from tests.fakes import contents, fill, message

PAIR = "src -> dst"


class Listings(MemoryAccount):
    """A source that remembers how each metadata FETCH of INBOX was asked: whole or by UIDs."""

    def __init__(self, server: MemoryServer) -> None:
        super().__init__(server)
        self.whole = 0
        self.windows: list[tuple[int, int]] = []

    def fetch_meta(self, folder, uids=None, *, message_ids=False):  # type: ignore[no-untyped-def]
        if folder == "INBOX" and uids is None:
            self.whole += 1
        elif folder == "INBOX" and isinstance(uids, range):
            self.windows.append((uids.start, uids.stop - 1))
        return super().fetch_meta(folder, uids, message_ids=message_ids)


class Totals(NoProgress):
    def __init__(self) -> None:
        self.started: list[int] = []

    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None:
        self.started.append(messages)


def run(src: MemoryServer, dst: MemoryServer, store: MemoryStateStore, **kw: object):
    source = Listings(src)
    progress = Totals()
    options = SyncOptions(window=4, **kw)  # type: ignore[arg-type]
    summary = Migration(source, MemoryAccount(dst), store, PAIR, options, progress).run()
    return summary, source, progress


@pytest.fixture
def servers() -> tuple[MemoryServer, MemoryServer]:
    src, dst = MemoryServer(delimiter="/"), MemoryServer(delimiter=".")
    # 10 messages: every third without a Message-ID (matched by content), two byte-identical.
    bodies = [message(i, mid=i % 3 != 0) for i in range(9)] + [message(1)]
    fill(src, "INBOX", bodies)
    return src, dst


def test_a_small_folder_is_one_listing_and_a_big_dense_one_windows_of_uids() -> None:
    assert spans(FolderStatus(1, 11, 10), 20) == [Span(1, 2**32, None)]
    assert spans(FolderStatus(1, 11, 10), 4) == [
        Span(1, 4, range(1, 5)),
        Span(5, 8, range(5, 9)),
        Span(9, 10, range(9, 11)),
    ]
    # UIDs spread over far more than the messages: listed whole, not a FETCH per empty window.
    assert spans(FolderStatus(1, 1001, 10), 4) == [Span(1, 2**32, None)]
    assert spans(FolderStatus(1, 1, 0), 4) == [Span(1, 2**32, None)]


def test_first_pass_incremental_pass_and_lost_state_walk_the_folder_in_windows(servers) -> None:
    src, dst = servers
    store = MemoryStateStore()
    first, source, progress = run(src, dst, store)
    assert (first.messages_copied, first.failures) == (10, [])
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert source.whole == 0, "a folder of several windows is never listed whole"
    assert source.windows == [(1, 4), (5, 8), (9, 10)]
    assert progress.started == [10]  # from STATUS: the windows after the first are not planned yet

    src.folder("INBOX").set_flags(6, frozenset({"\\Flagged"}))
    again, source, progress = run(src, dst, store)
    assert (again.messages_copied, again.flags_updated) == (0, 1)
    assert again.messages_skipped_existing == 10
    assert (source.whole, progress.started) == (0, [0])
    assert contents(dst, "INBOX") == contents(src, "INBOX")

    lost, source, _ = run(src, dst, MemoryStateStore())
    assert lost.messages_copied == 0, "every message is matched on the target, none copied"
    assert lost.messages_skipped_existing == 10
    assert len(dst.folder("INBOX").messages) == 10
    assert source.whole == 0


def test_lost_state_copies_only_what_the_target_lacks_window_by_window(servers) -> None:
    src, dst = servers
    store = MemoryStateStore()
    run(src, dst, store)
    box = src.folder("INBOX")
    for n in (20, 21, 22, 23, 24):  # five more, across two new windows
        box.add(message(n), frozenset(), box.messages[1].internaldate)
    box.add(message(1), frozenset(), box.messages[1].internaldate)  # a third identical copy
    summary, _, _ = run(src, dst, MemoryStateStore())
    assert (summary.messages_copied, summary.messages_skipped_existing) == (6, 10)
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_a_stop_between_windows_resumes_from_the_rows(servers) -> None:
    src, dst = servers
    store = MemoryStateStore()
    migration = Migration(
        MemoryAccount(src), MemoryAccount(dst), store, PAIR, SyncOptions(window=4, batch_count=4)
    )

    class StopAfterFirstWindow(NoProgress):
        def advanced(self, messages: int, nbytes: int) -> None:
            migration.request_stop()

    migration.progress = StopAfterFirstWindow()
    stopped = migration.run()
    assert stopped.stopped
    assert 0 < stopped.messages_copied < 10
    rest, _, _ = run(src, dst, store)
    assert stopped.messages_copied + rest.messages_copied == 10
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_the_listing_hands_each_target_message_out_once_lowest_uid_first(tmp_path: Path) -> None:
    with TargetListing() as listing:
        path = Path(listing.path)
        assert (
            listing.add(
                [(1, "a", 10, ""), (2, "a", 10, "\\Seen"), (3, "b", 5, ""), (4, None, 7, "")]
            )
            == 4
        )
        assert listing.unkeyed(0, 10) == [(4, 7)]
        listing.set_keys([(4, "c")])
        assert listing.unkeyed(0, 10) == []
        listing.claim([1])  # another source folder's copy
        assert listing.take(["a", "a", "b", None, "c", "z"]) == [
            (2, "\\Seen"),
            None,
            (3, ""),
            None,
            (4, ""),
            None,
        ]
        assert listing.take(["b", "c"]) == [None, None]
    assert not path.exists(), "the scratch file is deleted when closed"


def test_with_condstore_many_new_messages_are_walked_in_windows(servers) -> None:
    src, dst = servers  # the fake server offers CONDSTORE
    store = MemoryStateStore()
    run(src, dst, store)
    box = src.folder("INBOX")
    box.set_flags(2, frozenset({"\\Flagged"}))
    few, source, _ = run(src, dst, store)  # one change: CHANGEDSINCE, no window walked
    assert (few.flags_updated, source.windows, source.whole) == (1, [], 0)
    for n in range(30, 36):  # more new UIDs than a window holds
        box.add(message(n), frozenset(), box.messages[1].internaldate)
    many, source, _ = run(src, dst, store)
    assert many.messages_copied == 6
    assert source.windows[0] == (1, 4), "walked from the first window"
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_without_condstore_an_incremental_pass_walks_every_window(servers) -> None:
    src, dst = servers
    src.condstore = False
    store = MemoryStateStore()
    run(src, dst, store)
    box = src.folder("INBOX")
    box.set_flags(9, frozenset({"\\Answered"}))
    box.add(message(40), frozenset(), box.messages[1].internaldate)
    summary, source, progress = run(src, dst, store)
    assert (summary.messages_copied, summary.flags_updated) == (1, 1)
    assert summary.messages_skipped_existing == 10
    assert source.windows == [(1, 4), (5, 8), (9, 11)]
    assert source.whole == 0
    assert progress.started == [1]  # STATUS: 11 messages, 10 rows
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_with_condstore_a_big_folder_with_many_changes_is_walked_in_windows(servers) -> None:
    """Many flags changed since the last pass: one CHANGEDSINCE answer would hold them all at
    once, so the source counts them first (ESEARCH COUNT) and the pass walks its windows."""
    src, dst = servers
    store = MemoryStateStore()
    run(src, dst, store)
    box = src.folder("INBOX")
    for uid in sorted(box.messages)[:6]:  # more changes than a window (4) holds
        box.set_flags(uid, frozenset({"\\Flagged"}))
    many, source, _ = run(src, dst, store)
    assert many.flags_updated == 6
    assert source.windows and source.windows[0] == (1, 4), "walked from the first window"
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_a_sparse_folder_is_walked_in_windows_that_start_at_marked_uids() -> None:
    """Most UIDs expunged: equal UID ranges would be mostly empty FETCHes, and a listing of the
    whole folder grows with it. The windows start at the UIDs of every window-th message."""
    src, dst = MemoryServer(delimiter="/"), MemoryServer(delimiter=".")
    fill(src, "INBOX", [message(i) for i in range(100)])
    box = src.folder("INBOX")
    for uid in [u for u in sorted(box.messages) if u % 10]:  # keep UIDs 10, 20, ... 100
        del box.messages[uid]
    status = FolderStatus(box.uidvalidity, box.uidnext, len(box.messages))
    assert status.exists == 10 and status.uidnext - 1 > 4 * status.exists  # sparse
    store = MemoryStateStore()
    summary, source, _ = run(src, dst, store)
    assert summary.messages_copied == 10 and summary.failures == []
    assert source.whole == 0, "never listed whole"
    assert source.windows == [(1, 39), (40, 79), (80, 100)]  # marks: UIDs 40 and 80
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    again, source, _ = run(src, dst, store)
    assert again.messages_copied == 0


def test_marked_windows_cover_every_uid_whatever_the_marks() -> None:
    assert marked_spans([], 7) == [Span(1, 7, range(1, 8))]
    assert marked_spans([5, 1, 5, 99], 9) == [Span(1, 4, range(1, 5)), Span(5, 9, range(5, 10))]
