"""verify on the in-memory fake server: what it reports, and that its scratch file goes away."""

import datetime as dt
import hashlib
import tempfile

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.domain.folders import MappingOptions
from mailferry.domain.identity import epoch
from mailferry.service.planning import plan_folders
from mailferry.service.verify import DETAIL, VerifyReport, verify
from tests.fakes import BASE, fill, message

SEEN = frozenset({"\\Seen"})


def check(src: MemoryServer, dst: MemoryServer) -> VerifyReport:
    source, target = MemoryAccount(src), MemoryAccount(dst)
    return verify(source, target, plan_folders(source, target, MappingOptions()))


def short_sha(n: int) -> str:
    return hashlib.sha256(message(n)).hexdigest()[:12]


def test_a_faithful_copy_is_identical_and_counted():
    src, dst = MemoryServer(delimiter="/"), MemoryServer(delimiter=".")
    for server in (src, dst):
        fill(server, "INBOX", [message(i) for i in range(5)])
        fill(server, "Work", [message(10 + i, mid=False) for i in range(3)])
    report = check(src, dst)
    assert report.identical
    counts = {(d.target, d.source_count, d.target_count) for d in report.folders}
    assert counts == {("INBOX", 5, 5), ("Work", 3, 3)}


def test_differences_are_explained_missing_and_near_misses_first_then_extras():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(i) for i in range(4)])
    box = dst.create("INBOX")
    box.add(message(0), SEEN, BASE)  # as on the source
    box.add(message(1), frozenset({"\\Seen", "\\Flagged"}), BASE + dt.timedelta(days=1, seconds=1))
    box.add(message(2), SEEN, BASE)  # the source's is a day and two seconds later
    box.add(message(7), SEEN, BASE)  # not on the source; message 3 is not on the target
    (inbox,) = check(src, dst).folders
    later = epoch(BASE + dt.timedelta(days=2, seconds=2))
    expected = [
        f"message sha256 {short_sha(1)}…: flags ['\\\\Flagged', '\\\\Seen'] instead of ['\\\\Seen']",
        f"message sha256 {short_sha(2)}…: date {epoch(BASE)} instead of {later}",
        f"missing on target: message sha256 {short_sha(3)}… dated {epoch(BASE) + 3 * 86400 + 3}",
        f"extra on target: message sha256 {short_sha(7)}… dated {epoch(BASE)}",
    ]
    assert sorted(inbox.problems[:3]) == sorted(expected[:3])  # by hash, in the report
    assert inbox.problems[3:] == expected[3:]
    assert (inbox.source_count, inbox.target_count) == (4, 4)


def test_byte_identical_twins_count_as_two_messages():
    src, dst = MemoryServer(), MemoryServer()
    twin = b"Subject: twin\r\n\r\ntwin\r\n"
    for server, copies in ((src, 2), (dst, 1)):
        box = server.create("INBOX")
        for _ in range(copies):
            box.add(twin, SEEN, BASE)
    (inbox,) = check(src, dst).folders
    sha = hashlib.sha256(twin).hexdigest()[:12]
    assert inbox.problems == [f"missing on target: message sha256 {sha}… dated {epoch(BASE)}"]
    assert (inbox.source_count, inbox.target_count) == (2, 1)


def test_a_folder_of_many_differences_lists_the_first_and_counts_the_rest():
    """A report of a million differences must not be a million lines in memory."""
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(i) for i in range(DETAIL + 150)])
    box = dst.create("INBOX")
    for i in range(30):
        box.add(message(10_000 + i), SEEN, BASE)
    (inbox,) = check(src, dst).folders
    assert len(inbox.problems) == DETAIL + 1
    assert all(p.startswith("missing on target") for p in inbox.problems[:DETAIL])
    assert inbox.problems[-1] == (
        f"… and 180 more not listed (in all: {DETAIL + 150} missing on target, "
        "0 with another date or flags, 30 extra on target)"
    )


def test_the_scratch_file_is_removed_afterwards(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(i) for i in range(3)])
    fill(dst, "INBOX", [message(i) for i in range(2)])
    assert not check(src, dst).identical
    assert list(tmp_path.iterdir()) == []
