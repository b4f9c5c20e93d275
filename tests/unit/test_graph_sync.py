"""sync_mailboxes / verify_mailboxes on the strict in-memory ExchangeMailbox fake: folders,
incremental passes, crashes between import and state commit, lost state, stale change keys,
oversize items, failures, throttling, stop requests; and the fake's own strictness."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from mailferry.adapters.memory.exchange import (
    ANSWER_LOST,
    NOT_SENT,
    PAGE,
    MemoryExchange,
    MemoryMailbox,
    decode,
)
from mailferry.adapters.memory.mailboxstate import MemoryMailboxStateStore
from mailferry.domain.errors import ConnectError, ItemConflictError, SyncTokenInvalidError
from mailferry.domain.mailboxmodel import EntryPage, gather
from mailferry.domain.mailboxplan import Copy
from mailferry.domain.mailboxreport import Doubt, EntryProblem, MailboxSummary
from mailferry.domain.workloads import Workload
from mailferry.service import graphsync
from mailferry.service.graphcontext import GraphSyncOptions
from mailferry.service.graphsync import sync_mailboxes
from mailferry.service.graphverify import verify_mailboxes
from mailferry.service.resilience import RetryPolicy

FAST = GraphSyncOptions(retry=RetryPolicy(attempts=3, base_wait=0.0, max_wait=0.0))
NO_RETRY = GraphSyncOptions(retry=RetryPolicy(attempts=0, base_wait=0.0, max_wait=0.0))
MAIL = Workload.MAIL


class Pair:
    def __init__(self) -> None:
        self.src = MemoryExchange("src")
        self.dst = MemoryExchange("dst")
        self.state = MemoryMailboxStateStore()
        self.inbox = self.src.well_known("inbox")

    def run(
        self,
        options: GraphSyncOptions = FAST,
        *,
        source: MemoryMailbox | None = None,
        delivered: bool = True,
        **kw: object,
    ) -> MailboxSummary:
        """One run; ``delivered``: its caller then delivers the summary and says so, as the CLI
        and the scheduler do (False: it dies first)."""
        source = source or MemoryMailbox(self.src)
        summary = sync_mailboxes(source, MemoryMailbox(self.dst), self.state, "p", options, **kw)
        if delivered:
            graphsync.forget_reported(self.state, "p", summary)
        return summary

    def target_bodies(self, well_known: str = "inbox") -> Counter[bytes]:
        return Counter(i.body for i in self.dst.items(self.dst.well_known(well_known)))


class DropsOn(MemoryMailbox):
    """A source whose connection drops whenever one folder is listed."""

    def __init__(self, server: MemoryExchange, folder_id: str) -> None:
        super().__init__(server)
        self.folder_id = folder_id

    def entries(self, folder_id: str, token: str | None) -> Iterator[EntryPage]:
        if folder_id == self.folder_id:
            raise ConnectError("the connection dropped (test)")
        return super().entries(folder_id, token)


@pytest.fixture
def pair() -> Pair:
    return Pair()


def test_a_first_pass_copies_every_workload_and_a_second_copies_nothing(pair: Pair) -> None:
    for n in range(45):
        pair.src.add(pair.inbox, f"mail {n}")
    work = pair.src.add_folder("Work", parent=pair.inbox)
    pair.src.add(work, "work mail")
    pair.src.add(pair.src.well_known("calendar"), "event", item_class="IPM.Appointment")
    pair.src.add(pair.src.well_known("contacts"), "card", item_class="IPM.Contact")
    first = pair.run()
    assert first.workloads[MAIL].copied == 46
    assert first.workloads[Workload.CALENDAR].copied == 1
    assert first.workloads[Workload.CONTACTS].copied == 1
    assert first.items_failed == 0
    created = [f for f in first.folders if f.created]
    assert [(f.source, f.workload) for f in created] == [("Inbox/Work", "mail")]
    assert len(pair.target_bodies()) == 45
    [copy] = pair.dst.items(created[0].target or "")
    assert (copy.body, copy.key, copy.item_class) == (
        b"work mail",
        pair.src.items(work)[0].key,
        "IPM.Note",
    )
    second = pair.run()
    assert sum(r.copied + r.updated + r.seen for r in second.workloads.values()) == 0


def test_imports_go_in_export_chunks_of_20_with_bounded_concurrency(pair: Pair) -> None:
    for n in range(50):
        pair.src.add(pair.inbox, f"m{n}")
    pair.dst.concurrency = 4  # a 5th request in flight: 429
    pair.dst.delay = 0.002
    summary = pair.run(GraphSyncOptions(concurrency=4, retry=FAST.retry))
    assert summary.workloads[MAIL].copied == 50
    assert pair.src.exports == 3  # 20 + 20 + 10
    assert pair.dst.max_in_flight <= 4
    assert pair.dst.throttled == 0


def test_throttled_imports_are_waited_out_and_counted(pair: Pair) -> None:
    for n in range(8):
        pair.src.add(pair.inbox, f"m{n}")
    pair.dst.concurrency = 1
    pair.dst.delay = 0.002
    patient = RetryPolicy(attempts=3, base_wait=0.001, max_wait=0.01)
    summary = pair.run(GraphSyncOptions(concurrency=4, retry=patient))
    assert summary.workloads[MAIL].copied == 8
    assert summary.throttled == pair.dst.throttled > 0


def test_changes_and_removals_on_the_source_go_by_delta(pair: Pair) -> None:
    ids = [pair.src.add(pair.inbox, f"m{n}") for n in range(3)]
    pair.run()
    pair.src.change(ids[0], "m0 edited")
    pair.src.delete(ids[1])
    pair.src.add(pair.inbox, "m3")
    summary = pair.run()
    report = summary.workloads[MAIL]
    assert (report.seen, report.updated, report.copied) == (2, 1, 1)
    assert report.removed_on_source_kept == 1
    assert pair.target_bodies() == Counter([b"m0 edited", b"m1", b"m2", b"m3"])


def test_an_expired_delta_token_lists_the_folder_whole(pair: Pair) -> None:
    ids = [pair.src.add(pair.inbox, f"m{n}") for n in range(3)]
    pair.run()
    pair.src.expire_tokens()
    pair.src.delete(ids[2])
    summary = pair.run()
    report = summary.workloads[MAIL]
    assert (report.seen, report.unchanged, report.removed_on_source_kept) == (2, 2, 1)


def test_a_lost_answer_is_settled_by_key_never_imported_twice(pair: Pair) -> None:
    for n in range(5):
        pair.src.add(pair.inbox, f"m{n}")
    pair.dst.fail_imports(
        ANSWER_LOST, NOT_SENT, ANSWER_LOST
    )  # two landed without answer, one never arrived
    summary = pair.run()
    assert summary.retries == 1
    report = summary.workloads[MAIL]
    assert (report.seen, report.copied, report.unchanged) == (5, 5, 0)  # answers recovered
    assert summary.items_failed == 0
    assert pair.target_bodies() == Counter(f"m{n}".encode() for n in range(5))
    again = pair.run()
    assert again.workloads[MAIL].copied == 0


def test_a_crash_after_commit_then_a_rerun_finds_the_copy(pair: Pair) -> None:
    pair.src.add(pair.inbox, "m0")
    retry = GraphSyncOptions(retry=RetryPolicy(attempts=0, base_wait=0.0, max_wait=0.0))
    pair.dst.fail_imports(ANSWER_LOST)
    with pytest.raises(ConnectError):
        pair.run(retry)
    assert len(pair.state.import_intents("p", pair.inbox)) == 1
    summary = pair.run()
    assert summary.workloads[MAIL].copied == 1  # the crashed run never reported it
    assert pair.target_bodies() == Counter([b"m0"])
    assert pair.state.import_intents("p", pair.inbox) == []


def test_a_create_never_sent_is_not_settled_by_the_copy_of_a_removed_item(pair: Pair) -> None:
    """The copy an item removed on the source left on the target (kept, no row now) has the new
    item's key but another size: it is not taken for the new item's import. The new item is
    imported over it (an update: had it been its own import, its size changed on the way in, a
    create would have put it there twice)."""
    removed = pair.src.add(pair.inbox, "v1", key="<shared@x>")
    pair.run()
    pair.src.delete(removed)
    pair.src.add(pair.inbox, "v2, longer", key="<shared@x>")
    pair.dst.fail_imports(NOT_SENT)
    with pytest.raises(ConnectError):
        pair.run(GraphSyncOptions(retry=RetryPolicy(attempts=0, base_wait=0.0, max_wait=0.0)))
    summary = pair.run()
    assert summary.workloads[MAIL].updated == 1
    assert pair.target_bodies() == Counter([b"v2, longer"])
    assert pair.state.import_intents("p", pair.inbox) == []
    assert pair.run().workloads[MAIL].copied == 0


def test_a_keyless_item_with_a_lost_answer_is_reported_not_recognisable(pair: Pair) -> None:
    pair.src.add(pair.inbox, "no key", key=None)
    pair.dst.fail_imports(ANSWER_LOST)
    summary = pair.run()
    [problem] = summary.workloads[MAIL].not_recognisable
    assert "twice" in problem.reason
    assert pair.target_bodies() == Counter({b"no key": 2})


def test_a_doubt_is_reported_by_a_run_that_finishes_though_the_run_that_found_it_did_not(
    pair: Pair,
) -> None:
    """Two keyless items whose answers are lost: the run ends, their intents kept. The next run
    settles both (neither can be found), imports them again and loses one answer again: it ends
    too, and its summary with it. The item whose second import landed is recorded, twice on the
    target: the run that finishes says so (the doubt was kept in the state with the settled
    intent), and the run after it no longer does."""
    a = pair.src.add(pair.inbox, "keyless a", key=None)
    b = pair.src.add(pair.inbox, "keyless b", key=None)
    pair.dst.fail_imports(ANSWER_LOST, ANSWER_LOST)
    with pytest.raises(ConnectError):
        pair.run(NO_RETRY)
    pair.dst.fail_imports(ANSWER_LOST)
    with pytest.raises(ConnectError):
        pair.run(NO_RETRY)
    summary = pair.run()
    assert sorted(p.item for p in summary.workloads[MAIL].not_recognisable) == sorted([a, b])
    bodies = pair.target_bodies()
    assert sorted([bodies[b"keyless a"], bodies[b"keyless b"]]) == [2, 3]
    assert pair.state.doubts("p") == []
    again = pair.run()
    assert again.workloads[MAIL].not_recognisable == []


def test_a_doubt_stays_in_the_state_until_the_caller_has_delivered_the_summary(
    pair: Pair,
) -> None:
    """The run that reports a doubt does not forget it: its summary may never reach anyone (the
    process killed before printing it, the job's outcome never recorded). The next run that
    finishes reports it again; once a summary is delivered, the run after it does not."""
    item = pair.src.add(pair.inbox, "no key", key=None)
    pair.dst.fail_imports(ANSWER_LOST)
    lost = pair.run(delivered=False)
    assert [p.item for p in lost.workloads[MAIL].not_recognisable] == [item]
    assert [d.problem.item for d in pair.state.doubts("p")] == [item]
    assert lost.reported == pair.state.doubts("p")
    again = pair.run(delivered=False)
    assert [p.item for p in again.workloads[MAIL].not_recognisable] == [item]
    graphsync.forget_reported(pair.state, "p", again)
    assert pair.state.doubts("p") == []
    assert pair.run().workloads[MAIL].not_recognisable == []


def test_forgetting_a_summary_keeps_the_doubts_learnt_since(pair: Pair) -> None:
    """A caller forgets the doubts its summary reported, not those another run kept since."""
    inbox, calendar = pair.inbox, pair.src.well_known("calendar")
    first = Doubt(inbox, MAIL, EntryProblem("Inbox", "src-m1", "may be twice"))
    later = Doubt(calendar, Workload.CALENDAR, EntryProblem("Calendar", "src-e1", "may be twice"))
    pair.state.add_import_intents("p", inbox, [], [first])
    summary = pair.run(delivered=False)
    pair.state.add_import_intents("p", calendar, [], [later])
    graphsync.forget_reported(pair.state, "p", summary)
    assert pair.state.doubts("p") == [later]


def test_a_doubt_outlives_a_run_that_passed_its_folder_then_failed(pair: Pair) -> None:
    """The run that settles the keyless item's intent passes the inbox whole (the item created
    again), then loses the connection in the next folder: its summary is lost, the doubt kept."""
    item = pair.src.add(pair.inbox, "keyless", key=None)
    work = pair.src.add_folder("Work", parent=pair.inbox)
    pair.src.add(work, "work mail")
    pair.dst.fail_imports(ANSWER_LOST)
    with pytest.raises(ConnectError):
        pair.run(NO_RETRY)
    with pytest.raises(ConnectError):
        pair.run(NO_RETRY, source=DropsOn(pair.src, work))
    assert [d.problem.item for d in pair.state.doubts("p")] == [item]
    assert pair.target_bodies()[b"keyless"] == 2
    summary = pair.run()
    assert [p.item for p in summary.workloads[MAIL].not_recognisable] == [item]
    assert summary.workloads[MAIL].copied == 1  # the work mail; the inbox was passed


def test_a_keyless_item_created_beside_unknown_items_is_reported_by_a_later_run(
    pair: Pair,
) -> None:
    """A first pass into a target folder that holds items the state does not know: a keyless
    item may be among them, so its import may be a second copy. The doubt goes with its intent;
    the run ends in the next folder, and the run that finishes reports it."""
    pair.dst.add(pair.dst.well_known("inbox"), "keyless", key=None)  # an earlier tool's copy
    item = pair.src.add(pair.inbox, "keyless", key=None)
    work = pair.src.add_folder("Work", parent=pair.inbox)
    with pytest.raises(ConnectError):
        pair.run(NO_RETRY, source=DropsOn(pair.src, work))
    summary = pair.run()
    assert [p.item for p in summary.workloads[MAIL].not_recognisable] == [item]
    assert pair.target_bodies()[b"keyless"] == 2


def test_a_doubt_waits_for_a_run_that_moves_its_workload(pair: Pair) -> None:
    calendar = pair.src.well_known("calendar")
    doubt = Doubt(calendar, Workload.CALENDAR, EntryProblem("Calendar", "src-e1", "may be twice"))
    pair.state.add_import_intents("p", calendar, [], [doubt])
    mail_only = GraphSyncOptions(workloads=frozenset({MAIL}), retry=FAST.retry)
    assert pair.run(mail_only).workloads[MAIL].not_recognisable == []
    assert pair.state.doubts("p") == [doubt]
    stop = threading.Event()
    stop.set()
    stopped = pair.run(stop=stop)  # a run stopped on request finishes: its summary is shown
    assert stopped.stopped is not None
    assert stopped.workloads[Workload.CALENDAR].not_recognisable == [doubt.problem]
    assert pair.state.doubts("p") == []


def test_a_lost_state_recognises_copies_by_key(pair: Pair) -> None:
    for n in range(4):
        pair.src.add(pair.inbox, f"m{n}")
    pair.src.add(pair.inbox, "keyless", key=None)
    pair.run()
    pair.state.lose()
    summary = pair.run()
    report = summary.workloads[MAIL]
    assert (report.already_there, report.copied) == (4, 1)
    assert [p.item for p in report.not_recognisable] == [pair.src.items(pair.inbox)[-1].id]


def test_a_stale_target_change_key_is_read_once_and_updated(pair: Pair) -> None:
    item = pair.src.add(pair.inbox, "v1")
    pair.run()
    [copy] = pair.dst.items(pair.dst.well_known("inbox"))
    pair.dst.change(copy.id, "touched on the target")
    pair.src.change(item, "v2")
    summary = pair.run()
    assert summary.workloads[MAIL].updated == 1
    assert pair.target_bodies() == Counter([b"v2"])


def test_a_copy_deleted_on_the_target_is_created_again_on_update(pair: Pair) -> None:
    item = pair.src.add(pair.inbox, "v1")
    pair.run()
    pair.dst.delete(pair.dst.items(pair.dst.well_known("inbox"))[0].id)
    pair.src.change(item, "v2")
    summary = pair.run()
    assert summary.workloads[MAIL].copied == 1
    assert pair.target_bodies() == Counter([b"v2"])


def test_oversize_and_unexportable_items_are_reported_and_come_back(pair: Pair) -> None:
    big = pair.src.add(pair.inbox, "x" * 500)
    bad = pair.src.add(pair.inbox, "refused")
    pair.src.add(pair.inbox, "fine")
    pair.src.fail_exports.add(bad)
    options = GraphSyncOptions(max_item_size=100, retry=FAST.retry)
    summary = pair.run(options)
    reasons = {p.item: p.reason for p in summary.workloads[MAIL].failures}
    assert reasons[big] == "500 bytes: over the limit of 100 bytes"
    assert reasons[bad].startswith("export failed")
    assert pair.dst.imports == 1  # the oversize item was never uploaded
    assert pair.state.mailbox_failures("p", pair.inbox) == reasons
    pair.src.fail_exports.clear()
    again = pair.run(options)
    assert again.workloads[MAIL].copied == 1  # the token did not move past the failures
    assert [p.item for p in again.workloads[MAIL].failures] == [big]


def test_only_the_chosen_workloads_move(pair: Pair) -> None:
    pair.src.add(pair.inbox, "mail")
    pair.src.add(pair.src.well_known("calendar"), "event", item_class="IPM.Appointment")
    summary = pair.run(GraphSyncOptions(workloads=frozenset({Workload.CALENDAR}), retry=FAST.retry))
    assert set(summary.workloads) == {Workload.CALENDAR}
    assert pair.target_bodies() == Counter()


def test_a_stop_request_ends_the_run_between_chunks(pair: Pair) -> None:
    for n in range(30):
        pair.src.add(pair.inbox, f"m{n}")
    stop = threading.Event()
    stop.set()
    summary = pair.run(stop=stop)
    assert summary.stopped == "stop requested"
    assert summary.workloads.get(MAIL) is None or summary.workloads[MAIL].copied == 0
    assert pair.run().workloads[MAIL].copied == 30


def test_verify_finds_every_copy_then_what_is_missing(pair: Pair) -> None:
    ids = [pair.src.add(pair.inbox, f"m{n}") for n in range(3)]
    pair.run()
    report = verify_mailboxes(
        MemoryMailbox(pair.src), MemoryMailbox(pair.dst), pair.state, "p", FAST
    )
    assert report.ok, report.as_json()
    pair.dst.delete(pair.dst.items(pair.dst.well_known("inbox"))[0].id)
    pair.src.change(ids[2], "changed")
    report = verify_mailboxes(
        MemoryMailbox(pair.src), MemoryMailbox(pair.dst), pair.state, "p", FAST
    )
    [inbox] = [f for f in report.folders if f.source == "Inbox"]
    assert not report.ok
    assert (inbox.source_count, inbox.target_count) == (3, 2)
    assert inbox.missing == [ids[0]]
    assert inbox.outdated == [ids[2]]


class TestTheFakeIsStrict:
    def test_export_takes_at_most_20_ids(self) -> None:
        server = MemoryExchange()
        with pytest.raises(ValueError, match="1 to 20"):
            MemoryMailbox(server).export([f"i{n}" for n in range(21)])

    def test_an_update_with_another_change_key_is_refused(self) -> None:
        server = MemoryExchange()
        inbox = server.well_known("inbox")
        item = server.add(inbox, "v1")
        box = MemoryMailbox(server)
        [exported] = box.export([item])
        assert not isinstance(exported, Exception)
        with pytest.raises(ItemConflictError):
            box.import_item(inbox, exported.data, (item, "not-its-change-key"))
        assert decode(exported.data) == ("IPM.Note", server.items(inbox)[0].key, b"v1")

    def test_a_token_of_another_folder_or_epoch_is_refused(self) -> None:
        server = MemoryExchange()
        box = MemoryMailbox(server)
        token = gather(box.entries(server.well_known("inbox"), None)).token
        with pytest.raises(SyncTokenInvalidError):
            gather(box.entries(server.well_known("drafts"), token))
        server.expire_tokens()
        with pytest.raises(SyncTokenInvalidError):
            gather(box.entries(server.well_known("inbox"), token))


class WindowedState(MemoryMailboxStateStore):
    """The memory state, refusing to hand a pass a folder whole, and noting the largest window
    of rows a pass asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.widest = 0

    def copies(self, pair: str, source: str) -> list[Copy]:
        raise AssertionError("a pass read a folder's rows whole")

    def copies_of(self, pair: str, source: str, source_ids: Sequence[str]) -> dict[str, Copy]:
        self.widest = max(self.widest, len(source_ids))
        return super().copies_of(pair, source, source_ids)


def test_a_folder_of_many_pages_is_planned_a_page_at_a_time(pair: Pair) -> None:
    pair.state = WindowedState()
    ids = [pair.src.add(pair.inbox, f"m{n}") for n in range(PAGE * 2 + 30)]
    first = pair.run().workloads[MAIL]
    assert (first.seen, first.copied) == (PAGE * 2 + 30, PAGE * 2 + 30)
    assert 0 < pair.state.widest <= PAGE
    pair.src.delete(ids[5])
    pair.src.expire_tokens()  # a whole listing again: the removed row is found by absence
    second = pair.run().workloads[MAIL]
    assert (second.seen, second.unchanged, second.removed_on_source_kept) == (
        PAGE * 2 + 29,
        PAGE * 2 + 29,
        1,
    )
    assert pair.target_bodies() == Counter(f"m{n}".encode() for n in range(PAGE * 2 + 30))


def test_a_lost_state_recognises_copies_across_pages_by_key(pair: Pair) -> None:
    ids = [pair.src.add(pair.inbox, f"m{n}") for n in range(PAGE * 2 + 30)]
    pair.src.add(pair.inbox, "twin a", key="<twin@x>")
    pair.src.add(pair.inbox, "twin b", key="<twin@x>")  # one key twice: two copies, each claimed
    pair.run()
    pair.src.change(ids[7], "m7, edited")  # another size: its copy is updated
    pair.state = WindowedState()  # the state file is lost
    summary = pair.run()
    report = summary.workloads[MAIL]
    assert (report.already_there, report.updated, report.copied) == (PAGE * 2 + 31, 1, 0)
    assert pair.state.widest <= PAGE
    bodies = pair.target_bodies()
    assert bodies[b"m7, edited"] == 1
    assert bodies[b"m7"] == 0
    assert (bodies[b"twin a"], bodies[b"twin b"]) == (1, 1)
    assert sum(bodies.values()) == PAGE * 2 + 32
