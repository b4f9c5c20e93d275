import datetime as dt

from mailferry.domain.identity import epoch
from mailferry.domain.model import MessageMeta
from mailferry.domain.plan import (
    Selection,
    batches,
    choose,
    flag_updates,
    match_existing,
    reconcile_intents,
    target_flags,
)
from mailferry.domain.ports import Copied, Intent

DAY = dt.datetime(2015, 3, 4, 23, 30, tzinfo=dt.UTC)
ALL = frozenset({"\\*"})


def meta(uid, *, mid=None, sha=None, size=100, when=DAY, flags=()):
    return MessageMeta(uid, frozenset(flags), when, size, mid, sha)


def test_choose_skips_deleted_unless_asked_and_counts_them():
    msgs = [meta(1), meta(2, flags=["\\Deleted"]), meta(3)]
    choice = choose(msgs, Selection())
    assert [m.uid for m in choice.copy] == [1, 3]
    assert choice.skipped_deleted == [2]
    assert [m.uid for m in choose(msgs, Selection(include_deleted=True)).copy] == [1, 2, 3]


def test_date_window_uses_internaldate_day():
    old = meta(1, when=dt.datetime(2010, 1, 1, tzinfo=dt.UTC))
    edge = meta(2, when=dt.datetime(2012, 1, 1, 0, 0, 1, tzinfo=dt.UTC))
    new = meta(3, when=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    choice = choose(
        [old, edge, new], Selection(since=dt.date(2012, 1, 1), before=dt.date(2020, 1, 1))
    )
    assert [m.uid for m in choice.copy] == [2]
    assert choice.skipped_filtered == [1, 3]


def test_target_flags_never_write_recent_or_deleted_and_report_refused_keywords():
    flags = {"\\Seen", "\\Recent", "\\Deleted", "$Label1", "Work"}
    kept, refused = target_flags(flags, frozenset({"\\Seen", "$Label1"}), Selection())
    assert kept == {"\\Seen", "$Label1"}
    assert refused == {"Work"}
    kept_all, refused_none = target_flags(flags, ALL, Selection(include_deleted=True))
    assert kept_all == {"\\Seen", "\\Deleted", "$Label1", "Work"}
    assert not refused_none


def test_match_existing_is_a_multiset_match():
    source = [meta(1, mid="<a>"), meta(2, mid="<a>"), meta(3, mid="<b>"), meta(4, sha="x")]
    target = [meta(10, mid="<a>"), meta(11, sha="x"), meta(12, mid="<c>")]
    pairs, unmatched = match_existing(source, target)
    assert [(s.uid, t.uid) for s, t in pairs] == [(1, 10), (4, 11)]
    assert [m.uid for m in unmatched] == [2, 3]


def test_match_existing_needs_same_date_and_size():
    source = [meta(1, mid="<a>", size=5), meta(2, mid="<b>")]
    target = [meta(10, mid="<a>", size=6), meta(11, mid="<b>", when=DAY + dt.timedelta(seconds=1))]
    pairs, unmatched = match_existing(source, target)
    assert pairs == []
    assert len(unmatched) == 2


def test_match_existing_ignores_claimed_target_messages():
    pairs, unmatched = match_existing([meta(1, mid="<a>")], [meta(10, mid="<a>")], claimed={10})
    assert pairs == []
    assert [m.uid for m in unmatched] == [1]


def intent(uid, sha, size=100, uidnext=5):
    return Intent(uid, sha, size, frozenset(), "INBOX", 7, uidnext)


def test_reconcile_confirms_landed_intents_once_each():
    intents = [intent(1, "h1"), intent(2, "h1"), intent(3, "h3")]
    landed = [meta(5, sha="h1"), meta(6, sha="h9")]
    confirmed, lost = reconcile_intents(intents, landed)
    assert confirmed == [Copied(1, 5, frozenset())]
    assert lost == [2, 3]


def test_reconcile_requires_matching_size_and_unclaimed():
    confirmed, lost = reconcile_intents([intent(1, "h", size=100)], [meta(5, sha="h", size=99)])
    assert confirmed == []
    assert lost == [1]
    confirmed, lost = reconcile_intents([intent(1, "h")], [meta(5, sha="h")], claimed={5})
    assert lost == [1]


def test_flag_updates_only_where_the_source_changed():
    copied = {
        1: Copied(1, 10, frozenset({"\\Seen"})),
        2: Copied(2, 11, frozenset()),
        3: Copied(3, None, frozenset()),
    }
    now = {
        1: frozenset({"\\Seen"}),
        2: frozenset({"\\Flagged", "\\Recent"}),
        3: frozenset({"\\Seen"}),
    }
    updates = flag_updates(now, copied, ALL, Selection())
    assert [(u.source_uid, u.target_uid, u.flags) for u in updates] == [
        (2, 11, frozenset({"\\Flagged"}))
    ]


def test_marking_deleted_on_the_source_is_not_carried_over():
    copied = {1: Copied(1, 10, frozenset({"\\Seen"}))}
    assert flag_updates({1: frozenset({"\\Seen", "\\Deleted"})}, copied, ALL, Selection()) == []


def test_batches_bound_count_and_bytes_and_big_messages_go_alone():
    msgs = [meta(i, size=s) for i, s in enumerate([10, 10, 10, 500, 10], start=1)]
    groups = batches(msgs, max_count=2, max_bytes=100)
    assert [[m.uid for m in g] for g in groups] == [[1, 2], [3], [4], [5]]


def test_selection_fingerprint_changes_with_options():
    assert Selection().fingerprint() != Selection(include_deleted=True).fingerprint()
    assert Selection().fingerprint() == Selection().fingerprint()


def test_reconcile_falls_back_to_message_id_and_date_when_the_target_rewrote_the_bytes():
    rewritten = Intent(1, "h-original", 100, frozenset(), "INBOX", 7, 5, "<a@x>", epoch(DAY))
    other = Intent(2, "h-other", 100, frozenset(), "INBOX", 7, 5, "<b@x>", epoch(DAY))
    landed = [meta(5, mid="<a@x>", sha="h-converted", size=131)]
    confirmed, lost = reconcile_intents([rewritten, other], landed)
    assert confirmed == [Copied(1, 5, frozenset())]
    assert lost == [2]


def test_reconcile_never_confirms_two_intents_with_one_message():
    a = Intent(1, "h", 100, frozenset(), "INBOX", 7, 5, "<a@x>", epoch(DAY))
    b = Intent(2, "h2", 100, frozenset(), "INBOX", 7, 5, "<a@x>", epoch(DAY))
    confirmed, lost = reconcile_intents([a, b], [meta(5, mid="<a@x>", sha="h")])
    assert [c.source_uid for c in confirmed] == [1]
    assert lost == [2]
