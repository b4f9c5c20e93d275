"""The migration service on the in-memory fake server (no sockets)."""

import tempfile

import pytest

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.folders import MappingOptions
from mailferry.domain.model import Summary
from mailferry.domain.plan import Selection
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.planning import plan_folders
from mailferry.service.verify import verify
from tests.fakes import BASE, contents, fill, live_contents, message

PAIR = "src -> dst"


def migrate(src, dst, store, **kw):
    options = SyncOptions(**kw)
    return Migration(MemoryAccount(src), MemoryAccount(dst), store, PAIR, options).run()


@pytest.fixture
def servers():
    src = MemoryServer(delimiter="/")
    dst = MemoryServer(delimiter=".")
    fill(src, "INBOX", [message(i) for i in range(5)])
    fill(src, "Work/Projects", [message(10 + i, mid=i % 2 == 0) for i in range(4)])
    src.create("Empty")
    return src, dst


def test_first_run_copies_everything_and_second_run_nothing(servers):
    src, dst = servers
    store = MemoryStateStore()
    first = migrate(src, dst, store)
    assert first.messages_copied == 9
    assert first.failures == []
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert contents(dst, "Work.Projects") == contents(src, "Work/Projects")
    assert "Empty" in dst.folders
    second = migrate(src, dst, store)
    assert second.messages_copied == 0
    assert second.messages_skipped_existing == 9
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_new_mail_and_flag_changes_carry_over_exactly(servers):
    src, dst = servers
    store = MemoryStateStore()
    migrate(src, dst, store)
    box = src.folder("INBOX")
    box.add(message(99), frozenset(), box.messages[1].internaldate)
    box.set_flags(2, frozenset({"\\Flagged", "$Label1"}))
    summary = migrate(src, dst, store)
    assert summary.messages_copied == 1
    assert summary.flags_updated == 1
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_without_condstore_flag_changes_are_found_by_a_flag_scan(servers):
    src, dst = servers
    src.condstore = False
    store = MemoryStateStore()
    migrate(src, dst, store)
    src.folder("INBOX").set_flags(3, frozenset({"\\Answered"}))
    summary = migrate(src, dst, store)
    assert summary.flags_updated == 1
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_lost_state_matches_existing_messages_instead_of_copying_again(servers):
    src, dst = servers
    migrate(src, dst, MemoryStateStore())
    summary = migrate(src, dst, MemoryStateStore())
    assert summary.messages_copied == 0
    assert summary.messages_skipped_existing == 9
    assert contents(dst, "Work.Projects") == contents(src, "Work/Projects")


def test_identical_messages_in_one_folder_stay_distinct():
    src, dst = MemoryServer(), MemoryServer()
    same = message(1)
    fill(src, "INBOX", [same, same, same, message(2, mid=False), message(2, mid=False)])
    src.folder("INBOX").messages[2].internaldate = src.folder("INBOX").messages[1].internaldate
    src.folder("INBOX").messages[3].internaldate = src.folder("INBOX").messages[1].internaldate
    migrate(src, dst, MemoryStateStore())
    assert len(dst.folder("INBOX").messages) == 5
    # Even with the state lost, a partial target is completed, never doubled.
    del dst.folder("INBOX").messages[min(dst.folder("INBOX").messages)]
    summary = migrate(src, dst, MemoryStateStore())
    assert summary.messages_copied == 1
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_uidvalidity_change_on_the_source_does_not_duplicate(servers):
    src, dst = servers
    store = MemoryStateStore()
    migrate(src, dst, store)
    src.recreate("INBOX")
    summary = migrate(src, dst, store)
    assert summary.messages_copied == 0
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_target_folder_recreated_is_refilled_once(servers):
    src, dst = servers
    store = MemoryStateStore()
    migrate(src, dst, store)
    dst.folders["Work.Projects"] = type(dst.folders["Work.Projects"])("Work.Projects")
    summary = migrate(src, dst, store)
    assert summary.messages_copied == 4
    assert contents(dst, "Work.Projects") == contents(src, "Work/Projects")


def test_crash_after_the_server_kept_a_message_is_reconciled(servers):
    src, dst = servers
    store = MemoryStateStore()
    crashing = MemoryAccount(dst, crash_after=3)
    with pytest.raises(ConnectError):
        Migration(MemoryAccount(src), crashing, store, PAIR, SyncOptions()).run()
    assert store.intents(PAIR, "INBOX"), "the in-flight batch must be on record"
    target = MemoryAccount(dst)
    summary = Migration(MemoryAccount(src), target, store, PAIR, SyncOptions()).run()
    assert target.appends == 9 - 3  # the 3 that landed are settled, not sent again
    assert summary.messages_copied == 9  # counted now: the killed run reported none
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert store.intents(PAIR, "INBOX") == []


def test_deleted_messages_are_skipped_and_counted_unless_asked(servers):
    src, dst = servers
    src.folder("INBOX").set_flags(1, frozenset({"\\Deleted", "\\Seen"}))
    summary = migrate(src, dst, MemoryStateStore())
    assert summary.messages_skipped_deleted == 1
    assert contents(dst, "INBOX") == live_contents(src, "INBOX")
    dst2 = MemoryServer()
    summary = migrate(src, dst2, MemoryStateStore(), selection=Selection(include_deleted=True))
    assert summary.messages_skipped_deleted == 0
    assert len(dst2.folder("INBOX").messages) == 5


def test_refused_message_is_reported_and_retried_later(servers):
    src, dst = servers
    fill(src, "Big", [message(1, body="x" * 5000)])
    dst.max_size = 1000
    store = MemoryStateStore()
    summary = migrate(src, dst, store)
    assert summary.messages_failed == 1
    assert summary.failures[0].folder == "Big"
    assert "TOOBIG" in summary.failures[0].reason
    assert store.failed_uids(PAIR, "Big") == {1}
    dst.max_size = None
    summary = migrate(src, dst, store)
    assert summary.messages_copied == 1
    assert summary.failures == []
    assert contents(dst, "Big") == contents(src, "Big")


def test_refused_keywords_are_reported_once_per_folder():
    src, dst = MemoryServer(), MemoryServer(keywords=False)
    fill(src, "INBOX", [message(1), message(2)], flags={"\\Seen", "$Label1"})
    summary = migrate(src, dst, MemoryStateStore())
    assert summary.messages_copied == 2
    assert len([w for w in summary.warnings if "$Label1" in w]) == 1
    assert all(m.flags == {"\\Seen"} for m in dst.folder("INBOX").messages.values())


def test_dry_run_writes_nothing(servers):
    src, dst = servers
    store = MemoryStateStore()
    works = Migration(
        MemoryAccount(src), MemoryAccount(dst), store, PAIR, SyncOptions(dry_run=True)
    ).plan()
    assert sum(w.totals()[0] for w in works) == 9
    assert list(dst.folders) == ["INBOX"]
    assert not dst.folder("INBOX").messages
    assert store.checkpoint(PAIR, "INBOX") is None


def test_folders_stay_where_the_first_run_put_them():
    """A target that flags "Outgoing" as \\Sent only once it exists must not move folders on re-runs."""
    src, dst = MemoryServer(delimiter="."), MemoryServer(delimiter="/")
    fill(src, "Sent", [message(1)])
    src.folders["Sent"].special_use = "\\Sent"
    fill(src, "Outgoing", [message(2)])
    store = MemoryStateStore()
    migrate(src, dst, store)
    assert sorted(dst.folders) == ["INBOX", "Outgoing", "Sent"]
    dst.folders["Outgoing"].special_use = "\\Sent"  # what Dovecot's special_use config does
    fill(src, "Sent", [message(3)])
    summary = migrate(src, dst, store)
    assert summary.messages_copied == 1
    assert sorted(dst.folders) == ["INBOX", "Outgoing", "Sent"]
    assert contents(dst, "Sent") == contents(src, "Sent")
    assert contents(dst, "Outgoing") == contents(src, "Outgoing")


def test_a_named_role_folder_merges_with_the_flagged_one():
    src, dst = MemoryServer(delimiter="."), MemoryServer(delimiter="/")
    fill(src, "Sent", [message(1)])
    src.folders["Sent"].special_use = "\\Sent"
    fill(src, "Sent Messages", [message(2)])
    summary = migrate(src, dst, MemoryStateStore())
    assert sorted(dst.folders) == ["INBOX", "Sent"]
    assert len(dst.folder("Sent").messages) == 2
    assert [(s, t) for s, t, _why in summary.renames] == [("Sent Messages", "Sent")]


def test_lost_state_on_a_target_that_rewrites_messages_does_not_duplicate():
    """Exchange stores a converted copy: sizes and hashes differ, Message-ID and INTERNALDATE do not."""
    src, dst = MemoryServer(), MemoryServer(rewrites=True)
    fill(src, "INBOX", [message(i) for i in range(6)])
    migrate(src, dst, MemoryStateStore())
    assert all(m.body.startswith(b"X-MS-Converted") for m in dst.folder("INBOX").messages.values())
    summary = migrate(src, dst, MemoryStateStore())  # the state database is lost
    assert summary.messages_copied == 0
    assert summary.messages_skipped_existing == 6
    assert len(dst.folder("INBOX").messages) == 6


def test_a_crash_mid_burst_on_a_rewriting_target_does_not_duplicate():
    src, dst = MemoryServer(), MemoryServer(rewrites=True)
    fill(src, "INBOX", [message(i) for i in range(9)])
    store = MemoryStateStore()
    with pytest.raises(ConnectError):
        Migration(
            MemoryAccount(src), MemoryAccount(dst, crash_after=4), store, PAIR, SyncOptions()
        ).run()
    target = MemoryAccount(dst)
    summary = Migration(MemoryAccount(src), target, store, PAIR, SyncOptions()).run()
    assert target.appends == 5  # the 4 that landed are recognised by Message-ID and date
    assert (summary.messages_copied, summary.messages_skipped_existing) == (9, 0)
    assert len(dst.folder("INBOX").messages) == 9


def test_verify_on_a_rewriting_target_compares_message_ids_not_bytes():
    src, dst = MemoryServer(), MemoryServer(rewrites=True)
    fill(src, "INBOX", [message(i) for i in range(4)])
    migrate(src, dst, MemoryStateStore())
    source, target = MemoryAccount(src), MemoryAccount(dst)
    plan = plan_folders(source, target, MappingOptions())
    assert verify(source, target, plan).identical
    dst.folder("INBOX").set_flags(1, frozenset({"\\Flagged"}))
    report = verify(source, target, plan)
    assert not report.identical
    assert any("flags" in line for line in report.lines())


def test_remaining_messages_add_up_across_lanes_and_reach_the_json():
    first, second = Summary(), Summary()
    first.messages_remaining, first.remaining = 3, {"INBOX": 2, "Work": 1}
    second.messages_remaining, second.remaining = 4, {"INBOX": 4}
    first.absorb(second)
    shown = first.as_json()
    assert shown["messages_remaining"] == 7
    assert shown["remaining"] == {"INBOX": 6, "Work": 1}


class ListingCounter(MemoryAccount):
    """Counts whole-folder listings (what lost-state matching reads)."""

    listings = 0

    def fetch_meta(self, folder, uids=None, *, message_ids=False):
        if uids is None:
            ListingCounter.listings += 1
        return super().fetch_meta(folder, uids, message_ids=message_ids)


def test_a_uidvalidity_that_moves_until_the_first_append_is_kept_as_appenduid_reports_it():
    """Courier: an empty folder answers every STATUS with a new UIDVALIDITY. The checkpoint keeps
    the one the APPENDs report, so the next run is incremental, not a matching from scratch."""
    src, dst = MemoryServer(), MemoryServer(phantom_uidvalidity=True)
    fill(src, "INBOX", [message(n) for n in range(5)])
    store = MemoryStateStore()
    Migration(MemoryAccount(src), MemoryAccount(dst), store, PAIR).run()
    checkpoint = store.checkpoint(PAIR, "INBOX")
    assert checkpoint is not None
    assert checkpoint.target_uidvalidity == dst.folder("INBOX").uidvalidity
    ListingCounter.listings = 0
    summary = Migration(MemoryAccount(src), ListingCounter(dst), store, PAIR).run()
    assert (summary.messages_copied, ListingCounter.listings) == (0, 0)
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def dry_totals(src, dst, store, **kw):
    """(to copy, bytes, flag updates, on target) summed over a dry run's folders, and the
    folders counted window by window (their message lists not kept)."""
    options = SyncOptions(dry_run=True, **kw)
    works = Migration(MemoryAccount(src), MemoryAccount(dst), store, PAIR, options).plan()
    totals = [w.totals() for w in works]
    sums = (*(sum(t[i] for t in totals) for i in range(3)), sum(w.existing for w in works))
    counted = {w.mapping.source.name for w in works if w.counted}
    assert all(not w.copy and not w.updates for w in works if w.counted)
    return sums, counted


@pytest.mark.parametrize("condstore", [True, False])
def test_a_dry_run_counts_window_by_window_what_the_run_then_does(condstore):
    """A dry run plans a folder as a run would, window by window, and keeps counts only (issue
    17 rule 1: planning in memory that does not grow with the folder), where there is nothing to
    match: a first pass into an empty folder, and an incremental pass."""
    src, dst = MemoryServer(condstore=condstore), MemoryServer()
    fill(src, "INBOX", [message(i, body="x" * i) for i in range(23)])
    fill(src, "Big", [message(100 + i) for i in range(40)])
    store = MemoryStateStore()
    (count, size, updates, existing), counted = dry_totals(src, dst, store, window=7)
    assert counted == {"INBOX", "Big"}
    first = migrate(src, dst, store, window=7)
    assert (count, size, updates, existing) == (63, first.bytes_copied, 0, 0)
    assert first.messages_copied == 63
    # New mail and flags changed at the source: counted as the run then finds them.
    for uid in (2, 9, 17):
        src.folder("INBOX").set_flags(uid, frozenset({"\\Seen", "\\Flagged"}))
    for i in range(12):
        src.folder("Big").add(message(200 + i), frozenset(), BASE)
    rows = (store.count_copied(PAIR, "INBOX"), store.count_copied(PAIR, "Big"))
    (count, size, updates, existing), counted = dry_totals(src, dst, store, window=7)
    # More new UIDs than a window: walked; a few flag changes (CONDSTORE) are one answer.
    assert counted == ({"Big"} if condstore else {"INBOX", "Big"})
    assert (store.count_copied(PAIR, "INBOX"), store.count_copied(PAIR, "Big")) == rows
    again = migrate(src, dst, store, window=7)
    assert (count, size, updates) == (
        again.messages_copied,
        again.bytes_copied,
        again.flags_updated,
    )
    assert (count, updates) == (12, 3)
    assert existing == again.messages_skipped_existing == 63
    assert contents(dst, "Big") == contents(src, "Big")


def test_a_dry_run_into_a_folder_with_mail_matches_it_window_by_window(tmp_path, monkeypatch):
    """Without state and with mail on the target, a dry run matches as a run would, window by
    window (issue #17 rule 1: the whole-folder match held ~300 MB at a million messages), and
    what it would find already there is counted as on target, not as to copy. Its matches go
    to a scratch file, removed after; the state is not written."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(i, mid=i % 3 != 0) for i in range(20)])
    box = dst.create("INBOX")
    for m in list(src.folder("INBOX").messages.values())[::2]:  # every other one, as it is
        box.add(m.body, m.flags, m.internaldate)
    box.add(message(500), frozenset(), BASE)  # on the target only: matches nothing
    store = MemoryStateStore()
    (count, _size, _updates, existing), counted = dry_totals(src, dst, store, window=4)
    assert (count, existing) == (10, 10)
    assert counted == {"INBOX"}
    assert store.checkpoint(PAIR, "INBOX") is None
    assert store.count_copied(PAIR, "INBOX") == 0
    assert list(tmp_path.iterdir()) == []
    run = migrate(src, dst, store, window=4)
    assert (run.messages_copied, run.messages_skipped_existing) == (count, existing)


def test_a_dry_run_after_the_state_went_stale_ignores_its_rows_as_a_run_does():
    """A checkpoint no longer valid (the target folder was deleted and made again): a run
    forgets the folder's rows and matches afresh; the dry run counts the same, and leaves the
    rows and the checkpoint as they were."""
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(i) for i in range(9)])
    store = MemoryStateStore()
    migrate(src, dst, store, window=4)
    del dst.folders["INBOX"]
    fill(dst, "INBOX", [message(i) for i in range(3)])
    before = (store.checkpoint(PAIR, "INBOX"), store.count_copied(PAIR, "INBOX"))
    (count, _size, _updates, existing), counted = dry_totals(src, dst, store, window=4)
    assert (count, existing) == (6, 3)
    assert counted == {"INBOX"}
    assert (store.checkpoint(PAIR, "INBOX"), store.count_copied(PAIR, "INBOX")) == before
    run = migrate(src, dst, store, window=4)
    assert (run.messages_copied, run.messages_skipped_existing) == (6, 3)
    assert contents(dst, "INBOX") == contents(src, "INBOX")


class ListsAhead(MemoryAccount):
    """A source that lists ahead (``ListingAhead``), recording what each session was asked."""

    def __init__(self, server, asked):
        super().__init__(server)
        self.asked = asked

    def send_listing(self, folder):
        self.asked.append((self, "send", folder))

    def status_with_listing(self, folder):
        self.asked.append((self, "take", folder))
        return self.status(folder), list(self.fetch_meta(folder, message_ids=True))


class AheadSessions:
    def __init__(self, src, dst):
        self.src, self.dst, self.asked = src, dst, []

    def source(self):
        return ListsAhead(self.src, self.asked)

    def target(self):
        return MemoryAccount(self.dst)


def test_the_biggest_folder_is_listed_ahead_at_the_start_and_planned_first_by_that_lane():
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    for folder, count in (("Small", 2), ("Big", 6), ("Middle", 3)):
        fill(src, folder, [message(len(folder) * 10 + i) for i in range(count)])
    sessions, store = AheadSessions(src, dst), MemoryStateStore()
    main = sessions.source()
    options = SyncOptions(connections=3)
    summary = Migration(main, MemoryAccount(dst), store, PAIR, options, reconnect=sessions).run()
    assert summary.messages_copied == 11
    assert contents(dst, "Big") == contents(src, "Big")
    sent = [(who, folder) for who, what, folder in sessions.asked if what == "send"]
    # First, and once: a lane whose folder ends while another folder waits lists that one ahead
    # (``_look_ahead``), which happens or not with the threads' timing.
    assert sent[0] == (main, "Big")
    assert [folder for _who, folder in sent].count("Big") == 1
    mine = [folder for who, what, folder in sessions.asked if who is main and what == "take"]
    assert mine[0] == "Big"  # the run's own lane took the folder it had asked ahead for
    sessions.asked.clear()
    again = Migration(sessions.source(), MemoryAccount(dst), store, PAIR, options).run()
    assert (again.messages_copied, sessions.asked) == (0, [])  # no first pass: nothing ahead
