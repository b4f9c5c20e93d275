"""Accounts of many folders (issue #17): a pass over unchanged folders costs a command per side,
not a STATUS and a SUBSCRIBE per folder, and still sees every change (service/snapshot.py)."""

import threading

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.service.migrate import Migration, SyncOptions
from tests.fakes import contents, fill, message

PAIR = "src -> dst"
FOLDERS = 120


def tree() -> tuple[MemoryServer, list[str]]:
    """A source of ``FOLDERS`` subscribed folders four levels deep, a message in every fifth."""
    src = MemoryServer(delimiter="/")
    names = [f"L{i % 3}/M{i % 7}/N{i % 11}/F{i}" for i in range(FOLDERS)]
    for index, name in enumerate(names):
        fill(src, name, [message(index)] if index % 5 == 0 else [])
        src.folder(name).subscribed = True
    return src, names


def run(src, dst, store, **options):
    """(summary, source session, target session) of one pass."""
    source, target = MemoryAccount(src), MemoryAccount(dst)
    summary = Migration(source, target, store, PAIR, SyncOptions(**options)).run()
    return summary, source, target


def test_an_unchanged_pass_costs_one_status_command_a_side_and_no_subscribe():
    src, _ = tree()
    dst, store = MemoryServer(delimiter="."), MemoryStateStore()
    first, _, target = run(src, dst, store)
    assert first.messages_copied == FOLDERS // 5
    assert target.commands["SUBSCRIBE"] >= FOLDERS
    summary, source, target = run(src, dst, store)
    assert (summary.messages_copied, summary.messages_skipped_existing) == (0, FOLDERS // 5)
    assert summary.folders == FOLDERS + 1  # and INBOX
    assert source.commands == {"LIST-STATUS": 1}
    assert target.commands == {"LIST-STATUS": 1}


def test_an_unchanged_pass_reads_both_sides_statuses_at_the_same_time():
    """The no-op pass waits for the slower side's LIST-STATUS, not for one after the other (on
    a folder of a million messages Dovecot takes seconds to answer each, issue #17): each side's
    command waits at a barrier only the other side's command can open."""
    src, _ = tree()
    dst, store = MemoryServer(delimiter="."), MemoryStateStore()
    run(src, dst, store)
    barrier = threading.Barrier(2, timeout=10)
    src.on_statuses = dst.on_statuses = barrier.wait
    summary, source, target = run(src, dst, store)
    assert (summary.messages_copied, summary.failures) == (0, [])
    assert source.commands == target.commands == {"LIST-STATUS": 1}
    assert not barrier.broken


def test_changes_after_an_unchanged_pass_are_found_folder_by_folder():
    src, names = tree()
    dst, store = MemoryServer(delimiter="."), MemoryStateStore()
    run(src, dst, store)
    run(src, dst, store)
    fill(src, names[1], [message(1000)])  # a new message
    src.folder(names[5]).set_flags(1, frozenset({"\\Seen", "\\Flagged"}))  # a flag change
    summary, source, _ = run(src, dst, store)
    assert (summary.messages_copied, summary.flags_updated) == (1, 1)
    assert source.commands["STATUS"] == 2  # only the changed folders are planned from scratch
    for name in (names[1], names[5]):
        assert contents(dst, name.replace("/", ".")) == contents(src, name)


class ArrivalAfterSnapshot(MemoryAccount):
    """A message arrives in ``folder`` just after the run read every folder's STATUS."""

    def __init__(self, server: MemoryServer, folder: str) -> None:
        super().__init__(server)
        self.folder = folder

    def statuses(self, folders):
        found = super().statuses(folders)
        fill(self.server, self.folder, [message(2000)])
        return found


def test_a_message_that_arrives_after_the_snapshot_is_copied_by_the_next_pass():
    """The snapshot says "unchanged", so this pass leaves the folder alone; its checkpoint is not
    moved past the new message, so the next pass copies it (never loses it)."""
    src, names = tree()
    dst, store = MemoryServer(delimiter="."), MemoryStateStore()
    run(src, dst, store)
    late = names[7]
    source = ArrivalAfterSnapshot(src, late)
    summary = Migration(source, MemoryAccount(dst), store, PAIR, SyncOptions()).run()
    assert summary.messages_copied == 0
    summary, _, _ = run(src, dst, store)
    assert summary.messages_copied == 1
    assert contents(dst, late.replace("/", ".")) == contents(src, late)


def test_without_condstore_every_folder_is_still_looked_at():
    """No HIGHESTMODSEQ, no way to tell a flag change from STATUS: no folder is skipped, and
    the target's statuses are not even asked for."""
    src, names = tree()
    src.condstore = False
    dst, store = MemoryServer(delimiter="."), MemoryStateStore()
    run(src, dst, store)
    src.folder(names[5]).set_flags(1, frozenset({"\\Answered"}))
    summary, source, target = run(src, dst, store)
    assert summary.flags_updated == 1
    assert source.commands["STATUS"] == FOLDERS + 1
    assert target.commands["LIST-STATUS"] == 0


def test_a_failed_message_is_tried_again_though_its_folder_did_not_change():
    src, names = tree()
    fill(src, names[3], [message(3000, body="x" * 5000)])
    dst, store = MemoryServer(delimiter="."), MemoryStateStore()
    dst.max_size = 1000
    first, _, _ = run(src, dst, store)
    assert first.messages_failed == 1
    dst.max_size = None
    summary, _, _ = run(src, dst, store)
    assert (summary.messages_copied, summary.messages_failed) == (1, 0)
    assert all(contents(dst, n.replace("/", ".")) == contents(src, n) for n in names)
