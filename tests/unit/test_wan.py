"""Latency hidden (issue 17 rule 6): reading one burst ahead, one target STATUS per folder pass,
folder set-up pipelined. Ordering is asserted with events and logs, never with clocks."""

from __future__ import annotations

import datetime as dt
import io
import threading
from typing import ClassVar

import pytest

from mailferry.adapters.imap.account import ImapAccount
from mailferry.adapters.imap.bodies import Stash, fetch_in_parts, read_bodies, send_bodies
from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.adapters.imap.rows import BODY
from mailferry.adapters.imap.wire import WINDOW, Pipeline
from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.model import AppendRequest
from mailferry.domain.ports import FolderSetup
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.prefetch import Prefetch
from tests.fakes import contents, fill, message
from tests.unit.test_wire import ScriptedServer

PAIR = "src -> dst"
WHEN = dt.datetime(2013, 7, 14, 9, 30, 5, tzinfo=dt.UTC)


def append_request(n: int) -> AppendRequest:
    data = message(n)
    return AppendRequest(n, io.BytesIO(data), len(data), frozenset({"\\Seen"}), WHEN)


# -- Prefetch ------------------------------------------------------------------------------------


def test_prefetch_keeps_the_order_and_reads_at_most_one_ahead():
    produced: list[int] = []

    def items():
        for n in range(6):
            produced.append(n)
            yield n

    seen = []
    with Prefetch(items(), discard=lambda _n: None) as ahead:
        for n in ahead:
            # While item n is being written, the reader may have read n + 1, never n + 2.
            assert len(produced) <= n + 2
            seen.append(n)
    assert seen == list(range(6))


def test_prefetch_raises_the_readers_error_in_the_writers_thread():
    def items():
        yield 1
        raise ConnectError("source dropped")

    taken = []
    with (
        pytest.raises(ConnectError, match="source dropped"),
        Prefetch(items(), lambda _n: None) as a,
    ):
        taken.extend(a)
    assert taken == [1]


def test_leaving_early_frees_what_was_read_ahead_and_stops_the_reader():
    freed: list[int] = []
    read: list[int] = []

    def items():
        for n in range(100):
            read.append(n)
            yield n

    ahead = Prefetch(items(), freed.append)
    with ahead:
        for n in ahead:
            if n == 2:
                break
    assert not ahead._thread.is_alive()
    assert read[-1] <= 3  # one ahead at most, then stopped
    assert freed == read[3:]  # the one read ahead and never taken is freed


# -- the copy phase on fakes ---------------------------------------------------------------------


class Overlapping(MemoryAccount):
    """A source and target that prove the overlap: the target's first APPEND waits until the
    source was asked for the second burst, which a stop-and-wait copy asks for only afterwards."""

    second_fetch = threading.Event()
    fetches = 0

    def fetch_messages(self, folder, metas):
        Overlapping.fetches += 1
        if Overlapping.fetches == 2:
            Overlapping.second_fetch.set()
        return super().fetch_messages(folder, metas)

    def append_batch(self, folder, requests):
        overlapped = Overlapping.second_fetch.wait(timeout=10)
        assert overlapped, "burst 2 was not read while burst 1 was written"
        return super().append_batch(folder, requests)


def test_the_next_burst_is_read_while_this_one_is_written():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(30)])
    Overlapping.fetches = 0
    Overlapping.second_fetch.clear()
    summary = Migration(
        Overlapping(src), Overlapping(dst), MemoryStateStore(), PAIR, SyncOptions(batch_count=10)
    ).run()
    assert summary.messages_copied == 30
    assert not summary.failures
    assert contents(dst, "INBOX") == contents(src, "INBOX")


class Counting(MemoryAccount):
    status_calls = 0

    def status(self, folder):
        Counting.status_calls += 1
        return super().status(folder)


class Recording(MemoryStateStore):
    """Keeps every intent, and checks each is committed before its APPEND is sent."""

    def __init__(self, target: MemoryServer) -> None:
        super().__init__()
        self.target = target
        self.intents = []

    def add_intents(self, pair, folder, intents):
        box = self.target.folder("INBOX") if "INBOX" in self.target.folders else None
        stored = len(box.messages) if box is not None else 0
        self.intents.extend((i, stored) for i in intents)
        super().add_intents(pair, folder, intents)


def test_one_target_status_per_folder_pass_and_every_uidnext_a_lower_bound():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(50)])
    store = Recording(dst)
    Counting.status_calls = 0
    Migration(MemoryAccount(src), Counting(dst), store, PAIR, SyncOptions(batch_count=10)).run()
    # At most planning's and the copy's, not one more per burst (5 bursts). A first pass's
    # planning takes the target's status from the run's snapshot (one call for every folder).
    assert Counting.status_calls <= 2
    copied = store.copied(PAIR, "INBOX")
    assert len(copied) == 50
    for intent, stored_before in store.intents:
        target_uid = copied[intent.source_uid].target_uid
        assert target_uid is not None
        assert intent.target_uidnext <= target_uid  # what settling after a crash relies on
        assert stored_before < target_uid  # committed before the APPEND that stored it
    assert contents(dst, "INBOX") == contents(src, "INBOX")


class DropsOnThirdFetch(MemoryAccount):
    fetches = 0

    def fetch_messages(self, folder, metas):
        DropsOnThirdFetch.fetches += 1
        if DropsOnThirdFetch.fetches == 3:
            raise ConnectError("connection lost: reset by peer")
        return super().fetch_messages(folder, metas)


def test_a_source_dropped_while_reading_ahead_loses_and_duplicates_nothing():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(40)])
    store = MemoryStateStore()
    DropsOnThirdFetch.fetches = 0
    with pytest.raises(ConnectError):  # no way to reconnect in this test: the run ends
        Migration(
            DropsOnThirdFetch(src), MemoryAccount(dst), store, PAIR, SyncOptions(batch_count=10)
        ).run()
    assert 0 < len(dst.folder("INBOX").messages) < 40
    assert not store.intents(PAIR, "INBOX")  # what was sent was answered and recorded
    first = len(store.copied(PAIR, "INBOX"))
    assert first == len(dst.folder("INBOX").messages)  # a row for every stored message
    summary = Migration(MemoryAccount(src), MemoryAccount(dst), store, PAIR).run()
    assert summary.messages_copied == 40 - first
    assert contents(dst, "INBOX") == contents(src, "INBOX")


# -- folder set-up -------------------------------------------------------------------------------


def test_pipelined_commands_go_in_windows_and_answer_in_order():
    count = WINDOW + 20
    script = b"".join(
        b"mf%d NO [ALREADYEXISTS] exists\r\n" % i if i == 5 else b"mf%d OK done\r\n" % i
        for i in range(1, count + 1)
    )
    server = ScriptedServer(script)
    answers = Pipeline(server).commands([b'CREATE "f%d"' % i for i in range(count)])
    assert [a.status for a in answers].count("NO") == 1
    assert answers[4].status == "NO"
    assert b"ALREADYEXISTS" in answers[4].text
    assert len(server.sent) == 2  # one write per window, none per folder
    assert server.sent[0].startswith(b'mf1 CREATE "f0"\r\nmf2 CREATE "f1"\r\n')


def test_the_imap_account_sets_folders_up_in_batches_and_fakes_one_by_one():
    assert issubclass(ImapAccount, FolderSetup)
    assert issubclass(NamespacedAccount, FolderSetup)
    assert not isinstance(MemoryAccount(MemoryServer()), FolderSetup)


# -- APPENDs of the next burst written before the answers to this one -----------------------------


class Pipelining(MemoryAccount):
    """A target that stores a burst when it is written and answers when asked (``send_batch``);
    ``lost_from``: the connection drops before the answers to that burst (counted from 1)."""

    events: ClassVar[list[tuple[str, int]]] = []
    lost_from: ClassVar[int | None] = None

    def send_batch(self, folder, requests):
        number = sum(1 for kind, _n in Pipelining.events if kind == "send") + 1
        Pipelining.events.append(("send", number))
        results = self.append_batch(folder, requests)

        def answers():
            if Pipelining.lost_from is not None and number >= Pipelining.lost_from:
                raise ConnectError("connection lost (injected)")
            Pipelining.events.append(("answers", number))
            return results

        return answers


def test_the_next_bursts_appends_go_out_before_this_ones_answers():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(40)])
    Pipelining.events, Pipelining.lost_from = [], None
    store = MemoryStateStore()
    summary = Migration(
        MemoryAccount(src), Pipelining(dst), store, PAIR, SyncOptions(batch_count=10)
    ).run()
    assert summary.messages_copied == 40
    # One burst ahead from the first: planning's STATUS is a lower bound of the UIDs to come,
    # and each burst's APPENDUIDs say it still is.
    assert Pipelining.events == [
        ("send", 1), ("send", 2), ("answers", 1), ("send", 3), ("answers", 2),
        ("send", 4), ("answers", 3), ("answers", 4),
    ]  # fmt: skip
    assert not store.intents(PAIR, "INBOX")
    assert len(store.copied(PAIR, "INBOX")) == 40
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def _lost_with_two_bursts_in_flight() -> tuple[MemoryServer, MemoryServer, MemoryStateStore]:
    """A first pass of 40 messages in bursts of 10 whose target connection drops before the
    answers to burst 2: bursts 2 and 3 were written, burst 4 never was."""
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(40)])
    Pipelining.events, Pipelining.lost_from = [], 2
    store = MemoryStateStore()
    with pytest.raises(ConnectError):
        Migration(
            MemoryAccount(src), Pipelining(dst), store, PAIR, SyncOptions(batch_count=10)
        ).run()
    return src, dst, store


def test_a_connection_lost_with_two_bursts_in_flight_duplicates_nothing():
    src, dst, store = _lost_with_two_bursts_in_flight()
    assert ("send", 3) in Pipelining.events  # burst 3 was written, 2 and 3 never answered
    assert len(store.intents(PAIR, "INBOX")) == 20  # both stay in flight, for the next pass
    assert len(dst.folder("INBOX").messages) == 30
    target = MemoryAccount(dst)
    summary = Migration(MemoryAccount(src), target, store, PAIR).run()
    assert target.appends == 10  # the 20 that landed are settled, not sent again
    # Burst 1 was counted by the run that lost the connection; the 20 settled are counted now.
    assert (summary.messages_copied, summary.messages_skipped_existing) == (30, 10)
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_answers_read_ahead_of_their_turn_are_kept_for_their_command():
    server = ScriptedServer(b"mf1 OK [APPENDUID 7 11] done\r\nmf2 OK [APPENDUID 7 12:13] done\r\n")
    pipeline = Pipeline(server)
    first = pipeline.send_appends("INBOX", [append_request(1)], multi=False)
    second = pipeline.send_appends("INBOX", [append_request(2), append_request(3)], multi=True)
    written = b"".join(server.sent)
    assert b"mf1 APPEND" in written and b"mf2 APPEND" in written  # before any answer was read
    assert len(server.sent) == 2  # each burst one write (``COALESCE``), not one per message
    later = pipeline.read_appends(second)  # reads mf1's answer on the way to mf2's
    earlier = pipeline.read_appends(first)  # nothing left to read: kept from before
    assert later is not None
    assert earlier is not None
    assert [r.target_uid for r in later] == [12, 13]
    assert [r.target_uid for r in earlier] == [11]


# -- folders overlapped on one lane --------------------------------------------------------------


class ListsAhead(MemoryAccount):
    """A source that can list a folder with its status (``ListingAhead``), recording the order
    in which listings are asked ahead and read."""

    def __init__(self, server: MemoryServer) -> None:
        super().__init__(server)
        self.events: list[tuple[str, str]] = []
        self.asked: dict[str, threading.Event] = {}

    def send_listing(self, folder):
        self.events.append(("ask", folder))
        self.asked.setdefault(folder, threading.Event()).set()

    def status_with_listing(self, folder):
        self.events.append(("read", folder))
        return self.status(folder), list(self.fetch_meta(folder, message_ids=True))


class RecordsStatuses(MemoryAccount):
    def __init__(self, server: MemoryServer) -> None:
        super().__init__(server)
        self.asked: list[list[str]] = []

    def statuses(self, folders):
        self.asked.append(list(folders))
        return super().statuses(folders)


class AnswersAfterListing(RecordsStatuses):
    """A target whose APPENDs into ``first`` are answered only once the source was asked for
    ``then``'s listing: a lane that waits for the answers before asking never gets them."""

    def __init__(self, server: MemoryServer, source: ListsAhead, first: str, then: str) -> None:
        super().__init__(server)
        self.source, self.first, self.then = source, first, then

    def append_batch(self, folder, requests):
        if folder == self.first:
            asked = self.source.asked.setdefault(self.then, threading.Event())
            assert asked.wait(10), f"{self.then}'s listing was not asked during {folder}'s APPENDs"
        return super().append_batch(folder, requests)


def test_the_next_folder_is_listed_while_the_last_appends_are_answered():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(30)])  # the larger folder goes first
    fill(src, "Notes", [message(100 + n) for n in range(5)])
    source = ListsAhead(src)
    target = AnswersAfterListing(dst, source, first="INBOX", then="Notes")
    store = MemoryStateStore()
    summary = Migration(source, target, store, PAIR).run()  # one burst a folder
    assert summary.messages_copied == 35 and not summary.failures
    # Each folder's listing is read by its own planning: INBOX's asked by the run's start (the
    # folder the lane plans first, asked while the target's folders are made ready), Notes's
    # while INBOX's last appends are answered, and nothing else asked of the source in between
    # (the session reads it first otherwise).
    assert source.events == [
        ("ask", "INBOX"),
        ("read", "INBOX"),
        ("ask", "Notes"),
        ("read", "Notes"),
    ]
    # Both first passes' target statuses came from one call at the start, after the creates.
    assert target.asked == [["INBOX", "Notes"]]
    for folder in ("INBOX", "Notes"):
        assert contents(dst, folder) == contents(src, folder)
    again = Migration(ListsAhead(src), MemoryAccount(dst), store, PAIR).run()
    assert again.messages_copied == 0 and not again.failures


def test_a_folder_two_source_folders_go_to_is_not_given_a_status_from_the_start():
    """The second pass into a shared folder must see what the first wrote: its planning reads
    the folder's status itself; a folder one source folder goes to takes the start's."""
    src, dst = MemoryServer(delimiter="."), MemoryServer(delimiter="/")
    fill(src, "INBOX", [message(0)])
    fill(src, "Sent", [message(1)])
    src.folders["Sent"].special_use = "\\Sent"
    fill(src, "Sent Messages", [message(2)])  # merges into the target's Sent
    target = RecordsStatuses(dst)
    summary = Migration(MemoryAccount(src), target, MemoryStateStore(), PAIR).run()
    assert summary.messages_copied == 3 and not summary.failures
    assert target.asked == [["INBOX"]]
    assert len(dst.folder("Sent").messages) == 2


# -- bodies asked ahead --------------------------------------------------------------------------


def test_rows_of_two_pipelined_fetches_are_filed_by_uid_however_they_interleave():
    """A server may run two FETCH commands at once and interleave their rows (RFC 3501 5.5;
    Dovecot does): rows read while waiting for the first burst's answer are kept for the
    second by UID, and a row of neither (pushed by the server) is dropped."""
    server = ScriptedServer(
        b"* 1 FETCH (UID 10 BODY[] {5}\r\nfirst)\r\n"
        b"* 3 FETCH (UID 30 BODY[] {5}\r\nthird)\r\n"  # the second burst's, before mf1's end
        b"* 2 FETCH (UID 20 BODY[] {6}\r\nsecond)\r\n"
        b"* 4 FETCH (FLAGS (\\Seen) UID 40)\r\n"  # nobody's
        b"mf1 OK done\r\n"
        b"* 5 FETCH (UID 50 BODY[] {5}\r\nfifth)\r\n"
        b"mf2 OK done\r\n"
    )
    pipeline = Pipeline(server)
    first = send_bodies(pipeline, "INBOX", (10, 20))
    second = send_bodies(pipeline, "INBOX", (30, 50))
    assert b"".join(server.sent) == (
        b"mf1 UID FETCH 10,20 (UID BODY.PEEK[])\r\nmf2 UID FETCH 30,50 (UID BODY.PEEK[])\r\n"
    )
    stash = Stash()
    rows = stash.file(read_bodies(pipeline, first), first, [second])
    assert {uid: row[BODY] for uid, row in rows.items()} == {10: b"first", 20: b"second"}
    rows = stash.file(read_bodies(pipeline, second), second, [])
    assert {uid: row[BODY] for uid, row in rows.items()} == {30: b"third", 50: b"fifth"}


class AsksAhead(MemoryAccount):
    """A source that can be asked for a burst's bodies ahead (``BodiesAhead``), recording the
    order of the asks and the reads; it refuses to ask ahead for a burst holding ``big``."""

    def __init__(self, server: MemoryServer, big: int | None = None) -> None:
        super().__init__(server)
        self.events: list[tuple[str, tuple[int, ...]]] = []
        self.big = big

    def send_bodies(self, folder, metas):
        uids = tuple(sorted(m.uid for m in metas))
        if self.big in uids:
            return False
        self.events.append(("ask", uids))
        return True

    def fetch_messages(self, folder, metas):
        self.events.append(("read", tuple(sorted(m.uid for m in metas))))
        return super().fetch_messages(folder, metas)


@pytest.mark.parametrize("big", [None, 15])
def test_the_next_bursts_bodies_are_asked_for_before_this_ones_are_read(big):
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(30)])
    source = AsksAhead(src, big=big)
    summary = Migration(
        source, MemoryAccount(dst), MemoryStateStore(), PAIR, SyncOptions(batch_count=10)
    ).run()
    assert summary.messages_copied == 30 and not summary.failures
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    bursts = [tuple(range(start, start + 10)) for start in (1, 11, 21)]
    if big is None:  # each burst asked for once, the next one before it is read
        assert source.events == [
            ("ask", bursts[0]),
            ("ask", bursts[1]),
            ("read", bursts[0]),
            ("ask", bursts[2]),
            ("read", bursts[1]),
            ("read", bursts[2]),
        ]
    else:  # the burst that cannot be asked ahead is fetched as usual, nothing asked behind it
        assert source.events == [
            ("ask", bursts[0]),
            ("read", bursts[0]),
            ("read", bursts[1]),
            ("ask", bursts[2]),
            ("read", bursts[2]),
        ]


def test_the_parts_of_a_large_message_are_put_in_order_however_they_interleave():
    """``fetch_in_parts`` asks for part N + 1 before reading part N; a server may answer part
    N + 1's row before part N's tagged answer: each part is placed by its offset."""
    server = ScriptedServer(
        b"* 1 FETCH (UID 7 BODY[]<0> {4}\r\nabcd)\r\n"
        b"* 1 FETCH (UID 7 BODY[]<4> {4}\r\nefgh)\r\n"  # part 2, before part 1's end
        b"mf1 OK done\r\n"
        b"mf2 OK done\r\n"
        b"* 1 FETCH (UID 7 BODY[]<8> {2}\r\nij)\r\n"
        b"mf3 OK done\r\n"
        b'* 1 FETCH (UID 7 BODY[]<12> "")\r\n'  # asked in vain (empty, quoted): dropped
        b"mf4 OK done\r\n"
        b"* 2 STATUS nothing\r\n"
    )
    written: list[bytes] = []
    size, refused = fetch_in_parts(Pipeline(server), 7, 4, written.append)
    assert (size, refused, b"".join(written)) == (10, None, b"abcdefghij")
    assert b"".join(server.sent).count(b"UID FETCH 7 (UID BODY.PEEK[]<") == 4
    assert server.readline() == b"* 2 STATUS nothing\r\n"  # nothing read past the last answer


class LandsLate(MemoryAccount):
    """A target whose messages ``held`` land only after this run's first look at the folder
    for its intents: a killed run's last APPENDs, applied by the server after the new run read
    the folder's status (``LateWrites``)."""

    settle_pause = 0.001

    def __init__(self, server: MemoryServer, held: list) -> None:
        super().__init__(server)
        self.held = held

    def fetch_meta(self, folder, uids=None, *, message_ids=False):
        found = list(super().fetch_meta(folder, uids, message_ids=message_ids))
        box = self.server.folder(folder)
        while self.held:
            stored = self.held.pop(0)
            box.add(stored.body, stored.flags, stored.internaldate)
        return iter(found)


def test_appends_a_killed_run_sent_that_land_after_the_next_run_looked_are_not_copied_twice():
    src, dst, store = _lost_with_two_bursts_in_flight()
    assert len(store.intents(PAIR, "INBOX")) == 20  # bursts 2 and 3, never answered
    box = dst.folder("INBOX")
    late = sorted(box.messages)[-10:]  # burst 3 is still on its way to the server
    held = [box.messages.pop(uid) for uid in late]
    target = LandsLate(dst, held)
    summary = Migration(MemoryAccount(src), target, store, PAIR).run()
    assert not held  # it landed during the run
    assert target.appends == 10  # burst 4 only: burst 3 was found on a second look
    assert summary.messages_copied == 30  # and bursts 2 and 3 are counted as copied
    assert contents(dst, "INBOX") == contents(src, "INBOX")
