"""Label folders (Gmail): the pure rules, then whole runs on the in-memory fake server."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

import pytest

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.folders import FolderMapping
from mailferry.domain.identity import epoch
from mailferry.domain.labels import LabelMode, LabelTally, label_key, meta_key, split_by_label
from mailferry.domain.model import FolderInfo, MessageMeta, Role
from mailferry.domain.ports import Intent
from mailferry.domain.profiles import GENERIC, GMAIL, label_policy
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.planning import intent_key
from mailferry.service.verify import verify
from tests.fakes import BASE, MemorySessions, message

PAIR = "gmail -> new"
ONCE = label_policy(GMAIL, LabelMode.ONCE)
FOLDERS = label_policy(GMAIL, LabelMode.FOLDERS)


def meta(uid: int, key_n: int, *, mid: bool = True) -> MessageMeta:
    return MessageMeta(
        uid,
        frozenset(),
        BASE + dt.timedelta(days=key_n),
        100 + key_n,
        f"<m{key_n}@x>" if mid else None,
        None if mid else f"{key_n:064x}",
    )


def mapping(name: str, role: Role | None = None) -> FolderMapping:
    return FolderMapping(FolderInfo(name, "/"), name, role, None)


# -- the pure rules ------------------------------------------------------------------------------


def test_only_a_labels_profile_has_a_policy():
    assert label_policy(GENERIC, "once") is None
    assert ONCE is not None
    assert FOLDERS is not None
    with pytest.raises(Exception, match="--labels 'all'"):
        label_policy(GMAIL, "all")


def test_order_puts_inbox_first_and_all_mail_last():
    assert ONCE is not None
    assert FOLDERS is not None
    mappings = [
        mapping("[Gmail]/All Mail"),
        mapping("Zeta"),
        mapping("[Gmail]/Trash", Role.TRASH),
        mapping("Alpha"),
        mapping("[Gmail]/Sent Mail", Role.SENT),
        mapping("INBOX", Role.INBOX),
        mapping("[Gmail]/Spam", Role.JUNK),
    ]
    free, ordered = ONCE.order(mappings)
    assert free == []
    assert [m.source.name for m in ordered] == [
        "INBOX",
        "[Gmail]/Sent Mail",
        "Alpha",
        "Zeta",
        "[Gmail]/Spam",
        "[Gmail]/Trash",
        "[Gmail]/All Mail",
    ]
    free, ordered = FOLDERS.order(mappings)
    assert [m.source.name for m in ordered] == ["[Gmail]/All Mail"]
    assert len(free) == 6
    assert FOLDERS.is_aggregate(mapping("[gmail].all mail"))  # any delimiter, any case
    assert FOLDERS.is_aggregate(mapping("Everything", Role.ALL))


def test_keys_recognise_a_message_by_id_date_size_else_content():
    a, b = meta(1, 1), meta(9, 1)
    assert meta_key(a) == meta_key(b)  # same message in two folders
    assert meta_key(a) != meta_key(meta(1, 2))
    assert meta_key(meta(1, 3, mid=False)) != meta_key(meta(1, 4, mid=False))
    assert meta_key(MessageMeta(1, frozenset(), BASE, 5)) is None  # needs a hash first
    sent = Intent(1, "ab" * 32, a.size, frozenset(), "INBOX", 1, 1, a.message_id, epoch(BASE))
    assert intent_key(sent) == label_key(a.message_id, epoch(BASE), a.size, None)
    assert intent_key(sent) == meta_key(MessageMeta(1, frozenset(), BASE, a.size, a.message_id))


def test_split_copies_only_what_no_standing_copy_stands_for():
    k1, k2, k3 = "k1", "k2", "k3"
    candidates = [(meta(1, 1), k1), (meta(2, 1), k1), (meta(3, 2), k2), (meta(4, 3), k3)]
    # One copy of k1 stands (from INBOX), two of k2, none of k3; this folder had nothing yet.
    tally = LabelTally(standing=Counter({k1: 1, k2: 2}), mine=Counter())
    copy, left = split_by_label(candidates, tally)
    assert [m.uid for m in copy] == [1, 4]  # one k1 twin (the lower UID), and k3
    assert [(m.uid, key) for m, key in left] == [(2, k1), (3, k2)]


def test_split_counts_the_folders_own_earlier_messages():
    # The folder copied one k1 before and now has a second, byte-identical one: two copies wanted.
    tally = LabelTally(standing=Counter({"k1": 1}), mine=Counter({"k1": 1}))
    copy, left = split_by_label([(meta(7, 1), "k1")], tally)
    assert [m.uid for m in copy] == [7]
    assert left == []


# -- whole runs on the fake server -----------------------------------------------------------------


def gmail_like() -> tuple[MemoryServer, dict[str, list[int]]]:
    """INBOX {1,2,3}, Work {2,4}, Sent {5,2}, Spam {8}, All Mail {1..7} (7: archived, no label)
    and 6 without a Message-ID only in All Mail."""
    src = MemoryServer()
    folders = {
        "INBOX": [1, 2, 3],
        "Work": [2, 4],
        "[Gmail]/Sent Mail": [5, 2],
        "[Gmail]/Spam": [8],
        "[Gmail]/All Mail": [1, 2, 3, 4, 5, 6, 7],
    }
    special = {"[Gmail]/Sent Mail": "\\Sent", "[Gmail]/Spam": "\\Junk", "[Gmail]/All Mail": "\\All"}
    src.create("[Gmail]")
    for name, numbers in folders.items():
        box = src.create(name, special.get(name))
        for n in numbers:
            box.add(message(n, mid=n != 6), frozenset({"\\Seen"}), BASE + dt.timedelta(days=n))
    return src, folders


def sha_numbers(server: MemoryServer, folder: str) -> Counter[str]:
    return Counter(
        hashlib.sha256(m.body).hexdigest() for m in server.folder(folder).messages.values()
    )


def expected(numbers: list[int]) -> Counter[str]:
    return Counter(hashlib.sha256(message(n, mid=n != 6)).hexdigest() for n in numbers)


def run(src, dst, store, policy, *, dry_run=False):
    options = SyncOptions(labels=policy, connections=3)
    migration = Migration(MemoryAccount(src), MemoryAccount(dst), store, PAIR, options)
    if dry_run:
        return migration, migration.plan()
    migration.run()
    return migration, None


def target_folder(dst: MemoryServer, suffix: str) -> str:
    return next(name for name in dst.folders if name.endswith(suffix))


def test_once_copies_each_message_once_into_its_first_folder():
    src, _ = gmail_like()
    dst = MemoryServer(delimiter=".")
    store = MemoryStateStore()
    m, _ = run(src, dst, store, ONCE)
    s = m.summary
    assert s.failures == []
    assert s.messages_copied == 8  # messages 1..8, each once
    assert s.messages_skipped_labels == 2 + 5  # Work's 2, Sent's 2; All Mail's 1..5
    assert sha_numbers(dst, "INBOX") == expected([1, 2, 3])
    assert sha_numbers(dst, "Work") == expected([4])
    assert sha_numbers(dst, target_folder(dst, "Sent Mail")) == expected([5])
    assert sha_numbers(dst, target_folder(dst, "All Mail")) == expected([6, 7])
    assert sha_numbers(dst, target_folder(dst, "Spam")) == expected([8])
    assert verify(MemoryAccount(src), MemoryAccount(dst), m.folder_plan(), labels=ONCE).identical
    # A re-run, and a re-run without the state, copy nothing.
    again, _ = run(src, dst, store, ONCE)
    assert again.summary.messages_copied == 0
    lost, _ = run(src, dst, MemoryStateStore(), ONCE)
    assert lost.summary.messages_copied == 0
    assert sum(sum(sha_numbers(dst, f).values()) for f in dst.folders) == 8


def test_folders_mode_copies_per_label_and_all_mail_adds_only_the_unlabelled():
    src, folders = gmail_like()
    dst = MemoryServer(delimiter=".")
    m, _ = run(src, dst, MemoryStateStore(), FOLDERS)
    assert m.summary.failures == []
    assert sha_numbers(dst, "Work") == expected(folders["Work"])
    assert sha_numbers(dst, target_folder(dst, "Sent Mail")) == expected([5, 2])
    assert sha_numbers(dst, target_folder(dst, "All Mail")) == expected([6, 7])
    assert m.summary.messages_skipped_labels == 5


def test_new_mail_in_a_second_label_is_not_copied_again():
    src, _ = gmail_like()
    dst = MemoryServer(delimiter=".")
    store = MemoryStateStore()
    run(src, dst, store, ONCE)
    # Message 3 gets the label Work; message 9 arrives with labels INBOX and Work.
    late = BASE + dt.timedelta(days=9)
    src.folder("Work").add(message(3), frozenset({"\\Seen"}), BASE + dt.timedelta(days=3))
    src.folder("INBOX").add(message(9), frozenset(), late)
    src.folder("Work").add(message(9), frozenset(), late)
    src.folder("[Gmail]/All Mail").add(message(9), frozenset(), late)
    m, _ = run(src, dst, store, ONCE)
    assert m.summary.messages_copied == 1
    assert m.summary.messages_skipped_labels == 3
    assert sha_numbers(dst, "INBOX") == expected([1, 2, 3, 9])
    assert sha_numbers(dst, "Work") == expected([4])


def test_a_dry_run_predicts_the_run_and_writes_nothing():
    src, _ = gmail_like()
    dst = MemoryServer(delimiter=".")
    store = MemoryStateStore()
    _, works = run(src, dst, store, ONCE, dry_run=True)
    assert works is not None
    assert sum(len(w.copy) for w in works) == 8
    assert sum(w.elsewhere for w in works) == 7
    assert store.count_copied(PAIR, "Work") == 0
    assert list(dst.folders) == ["INBOX"]


def test_verify_still_finds_a_message_missing_everywhere():
    src, _ = gmail_like()
    dst = MemoryServer(delimiter=".")
    m, _ = run(src, dst, MemoryStateStore(), ONCE)
    inbox = dst.folder("INBOX")
    two = next(uid for uid, msg in inbox.messages.items() if b"message 2\r" in msg.body)
    inbox.expunge(two)
    report = verify(MemoryAccount(src), MemoryAccount(dst), m.folder_plan(), labels=ONCE)
    assert not report.identical
    problems = {d.target: d.problems for d in report.folders if d.problems}
    # Message 2 is in INBOX, Work, Sent and All Mail: none of them finds it anywhere now.
    assert set(problems) == {"INBOX", "Work", "[Gmail].Sent Mail", "[Gmail].All Mail"}
    two_sha = hashlib.sha256(message(2)).hexdigest()[:12]
    for lines in problems.values():
        assert lines == [
            f"missing on target: message sha256 {two_sha}… dated {epoch(BASE) + 2 * 86400}"
        ]


def test_a_copy_left_in_flight_counts_before_a_higher_folder_is_planned():
    """A run dies right after All Mail's APPEND landed; the message then gets the INBOX label. The
    next run settles All Mail's intent before INBOX is planned: one copy, in All Mail."""
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    src.create("[Gmail]")
    src.create("[Gmail]/All Mail", "\\All")
    archived = message(50, mid=False)
    src.folder("[Gmail]/All Mail").add(archived, frozenset(), BASE)
    store = MemoryStateStore()
    options = SyncOptions(labels=ONCE)
    with pytest.raises(ConnectError):  # the APPEND lands, then the connection drops
        Migration(MemoryAccount(src), MemoryAccount(dst, crash_after=0), store, PAIR, options).run()
    src.folder("INBOX").add(archived, frozenset(), BASE)
    Migration(MemoryAccount(src), MemoryAccount(dst), store, PAIR, options).run()
    everywhere = sum((sha_numbers(dst, f) for f in dst.folders), Counter())
    assert everywhere == Counter({hashlib.sha256(archived).hexdigest(): 1})


@pytest.mark.parametrize(("policy", "extra"), [(ONCE, 0), (FOLDERS, 4)])
def test_lanes_are_opened_only_for_folders_that_may_run_side_by_side(policy, extra):
    src, _ = gmail_like()
    dst = MemoryServer(delimiter=".")
    sessions = MemorySessions(src, dst)  # opens the sessions a run asks beyond its first two
    options = SyncOptions(labels=policy, connections=3)
    m = Migration(
        MemoryAccount(src), MemoryAccount(dst), MemoryStateStore(), PAIR, options,
        reconnect=sessions,
    )  # fmt: skip
    m.run()
    assert m.summary.failures == []
    assert len(sessions.opened) == extra  # two more lanes of two sessions, or none at all
    assert sum(sum(sha_numbers(dst, f).values()) for f in dst.folders) == (
        8 if policy is ONCE else 10
    )
