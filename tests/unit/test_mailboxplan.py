"""The Microsoft 365 mailbox planner (domain/mailboxplan.py): the truth table row by row, the
intents of an interrupted run, and the folder map."""

from __future__ import annotations

import pytest

from mailferry.domain.mailboxfolders import map_folders
from mailferry.domain.mailboxmodel import MailboxEntry, MailboxFolder
from mailferry.domain.mailboxplan import (
    NOT_RECOGNISABLE,
    Claims,
    Copy,
    ImportIntent,
    ItemAction,
    Mode,
    Step,
    plan_entries,
    settle_intents,
)
from mailferry.domain.workloads import ALL, Workload


def entry(n: int, ck: str = "c1", key: str | None = "auto") -> MailboxEntry:
    return MailboxEntry(f"s{n}", ck, "IPM.Note", 10, f"<{n}@x>" if key == "auto" else key)


def target(n: int, ck: str = "t1", key: str | None = "auto") -> MailboxEntry:
    return MailboxEntry(f"t{n}", ck, "IPM.Note", 10, f"<{n}@x>" if key == "auto" else key)


def row(n: int, ck: str = "c1") -> Copy:
    return Copy(f"s{n}", ck, f"t{n}", "t1", f"<{n}@x>")


def steps(actions: list[ItemAction]) -> dict[str, Step]:
    return {a.source_id: a.step for a in actions}


class TestTruthTable:
    def test_no_row_and_the_folder_known_creates_without_looking(self) -> None:
        actions = plan_entries([entry(1)], [], {}, None, whole=False)
        assert actions == [ItemAction(Step.CREATE, "s1", entry(1))]

    def test_no_row_with_a_copy_by_key_is_recognised(self) -> None:
        claims = Claims([target(1)], [])
        [action] = plan_entries([entry(1)], [], {}, claims, whole=True)
        assert action.step is Step.RECOGNISED
        assert action.copy == Copy("s1", "c1", "t1", "t1", "<1@x>")

    def test_a_copy_by_key_of_another_size_is_updated(self) -> None:
        bigger = MailboxEntry("t1", "t1", "IPM.Note", 99, "<1@x>")
        [action] = plan_entries([entry(1)], [], {}, Claims([bigger], []), whole=True)
        assert (action.step, action.copy) == (Step.UPDATE, Copy("s1", "c1", "t1", "t1", "<1@x>"))

    def test_no_row_without_a_copy_creates(self) -> None:
        claims = Claims([target(2)], [])
        assert steps(plan_entries([entry(1)], [], {}, claims, whole=True)) == {"s1": Step.CREATE}

    def test_a_keyless_entry_is_created_and_reported_only_when_a_copy_could_exist(self) -> None:
        keyless = entry(1, key=None)
        [strangers] = plan_entries([keyless], [], {}, Claims([target(9)], []), whole=True)
        [empty] = plan_entries([keyless], [], {}, Claims([], []), whole=True)
        [known] = plan_entries([keyless], [], {}, None, whole=False)
        assert (strangers.step, strangers.note) == (Step.CREATE, NOT_RECOGNISABLE)
        assert (empty.note, known.note) == (None, None)

    def test_a_target_the_state_knows_is_no_stranger(self) -> None:
        action, removed = plan_entries(
            [entry(2, key=None)], [], {"s1": row(1)}, Claims([target(1)], ["t1"]), whole=True
        )
        assert (action.step, action.note) == (Step.CREATE, None)
        assert removed.step is Step.REMOVED_ON_SOURCE

    def test_recorded_same_change_key_is_unchanged_other_is_an_update(self) -> None:
        rows = {"s1": row(1), "s2": row(2)}
        actions = plan_entries([entry(1), entry(2, "c2")], [], rows, None, whole=False)
        assert steps(actions) == {"s1": Step.UNCHANGED, "s2": Step.UPDATE}
        assert actions[1].copy == row(2)

    def test_removed_on_the_source_is_kept_delta_and_whole(self) -> None:
        rows = {"s1": row(1), "s2": row(2)}
        delta = plan_entries([], ["s1", "s9"], rows, None, whole=False)
        whole = plan_entries([entry(2)], [], rows, None, whole=True)
        assert [(a.step, a.source_id) for a in delta] == [(Step.REMOVED_ON_SOURCE, "s1")]
        assert steps(whole) == {"s2": Step.UNCHANGED, "s1": Step.REMOVED_ON_SOURCE}

    def test_one_copy_is_claimed_once(self) -> None:
        twins = [MailboxEntry(f"s{n}", "c", "IPM.Note", 1, "<same@x>") for n in (1, 2)]
        claims = Claims([MailboxEntry("t1", "t", "IPM.Note", 1, "<same@x>")], [])
        assert steps(plan_entries(twins, [], {}, claims, whole=True)) == {
            "s1": Step.RECOGNISED,
            "s2": Step.CREATE,
        }

    def test_a_copy_the_state_records_is_not_claimed_again(self) -> None:
        claims = Claims([target(1)], ["t1"])
        assert claims.claim("<1@x>") is None


class TestIntents:
    def create(self, n: int, key: str | None = "auto", size: int | None = None) -> ImportIntent:
        real_key = f"<{n}@x>" if key == "auto" else key
        return ImportIntent(f"s{n}", "c1", "tf", real_key, Mode.CREATE, size=size)

    def update(self, n: int, replaced: str = "t1") -> ImportIntent:
        return ImportIntent(f"s{n}", "c2", "tf", f"<{n}@x>", Mode.UPDATE, f"t{n}", replaced)

    def test_a_create_found_by_key_is_recorded_else_dropped(self) -> None:
        settled = settle_intents([self.create(1), self.create(2)], Claims([target(1)], []))
        assert settled.done == (Copy("s1", "c1", "t1", "t1", "<1@x>"),)
        assert settled.dropped == ("s2",)
        assert settled.unrecognisable == frozenset()

    def test_a_keyless_create_is_dropped_and_marked(self) -> None:
        settled = settle_intents([self.create(1, key=None)], Claims([target(1)], []))
        assert (settled.dropped, settled.unrecognisable) == (("s1",), frozenset({"s1"}))
        [action] = plan_entries(
            [entry(1, key=None)], [], {}, None, whole=False, unrecognisable=settled.unrecognisable
        )
        assert (action.step, action.note) == (Step.CREATE, NOT_RECOGNISABLE)

    @pytest.mark.parametrize(
        ("sizes", "size", "landed", "this_version"),
        [
            # Another item's copy with its key (removed on the source), or its own import whose
            # size changed: taken as another version, imported again over it (an update).
            ((12,), 10, "t0", False),
            ((12, 10), 10, "t1", False),  # the one of its size (two copies: ambiguous, as before)
            ((12, None), 10, "t1", False),  # one whose size is not known before another size
            ((12,), None, "t0", True),  # an intent of schema 2 knows no size: by key alone
            ((10,), 10, "t0", True),
            ((None,), 10, "t0", True),
        ],
    )
    def test_a_create_is_settled_by_a_copy_of_its_size_first(
        self, sizes: tuple[int | None, ...], size: int | None, landed: str, this_version: bool
    ) -> None:
        copies = [MailboxEntry(f"t{i}", "t1", "IPM.Note", n, "<1@x>") for i, n in enumerate(sizes)]
        settled = settle_intents([self.create(1, size=size)], Claims(copies, []))
        ck = "c1" if this_version else ""  # "": the next pass imports it again, as an update
        assert (settled.done, settled.dropped) == ((Copy("s1", ck, landed, "t1", "<1@x>"),), ())

    @pytest.mark.parametrize(
        ("there", "landed"), [(target(1, "t2"), True), (target(1, "t1"), False), (None, False)]
    )
    def test_an_update_landed_when_the_change_key_moved(
        self, there: MailboxEntry | None, *, landed: bool
    ) -> None:
        claims = Claims([there] if there else [], ["t1"])
        settled = settle_intents([self.update(1)], claims)
        if landed:
            assert settled.done == (Copy("s1", "c2", "t1", "t2", "<1@x>"),)
        else:
            assert (settled.done, settled.dropped) == ((), ("s1",))


def folder(
    fid: str, name: str, cls: str = "IPF.Note", parent: str | None = None, known: str | None = None
) -> MailboxFolder:
    return MailboxFolder(fid, parent, name, cls, known)


SOURCE = [
    folder("s-in", "Inbox", known="inbox"),
    folder("s-work", "Work", parent="s-in"),
    folder("s-cal", "Calendar", "IPF.Appointment", known="calendar"),
    folder("s-bday", "Birthdays", "IPF.Appointment", parent="s-cal"),
    folder("s-out", "Outbox", known="outbox"),
    folder("s-find", "Finder", known="searchfolders"),
    folder("s-srch", "Unread", parent="s-find"),
    folder("s-jour", "Journal", "IPF.Journal", known="journal"),
    folder("s-conf", "Config", "IPF.Configuration"),
    folder("s-notes", "Notes", "IPF.StickyNote", known="notes"),
]
TARGET = [
    folder("t-in", "Posteingang", known="inbox"),
    folder("t-cal", "Kalender", "IPF.Appointment", known="calendar"),
    folder("t-work", "work", parent="t-in"),
]


class TestFolderMap:
    def test_well_known_to_well_known_others_by_name_under_the_mapped_parent(self) -> None:
        mapped = map_folders(SOURCE, TARGET, frozenset(ALL))
        where = {p.path: (p.target, p.under, p.name) for p in mapped.plans}
        assert where == {
            "Inbox": ("t-in", None, ""),
            "Inbox/Work": ("t-work", None, ""),  # names compare case-insensitively
            "Calendar": ("t-cal", None, ""),
            "Calendar/Birthdays": (None, "s-cal", "Birthdays"),
            "Notes": (None, None, "Notes"),  # no well-known notes on the target: created
        }

    def test_skipped_folders_are_reported_with_their_reason(self) -> None:
        skipped = {s.path: s.reason for s in map_folders(SOURCE, TARGET, frozenset(ALL)).skipped}
        assert set(skipped) == {"Outbox", "Finder", "Finder/Unread", "Journal", "Config"}
        assert "submitted" in skipped["Outbox"]
        assert skipped["Journal"] == "folder class IPF.Journal: no workload carries it"

    def test_a_workload_not_chosen_is_left_out_its_chosen_children_go_up(self) -> None:
        source = [
            folder("c", "Calendar", "IPF.Appointment", known="calendar"),
            folder("m", "Mail in calendar", parent="c"),
        ]
        [plan] = map_folders(source, [], frozenset({Workload.MAIL})).plans
        assert (plan.path, plan.under, plan.name) == ("Calendar/Mail in calendar", None, plan.name)
        assert plan.note == "its parent is not copied: under the root"

    def test_a_name_taken_by_another_class_gets_a_free_name(self) -> None:
        source = [folder("s", "Projects", "IPF.Contact")]
        target = [folder("t", "Projects", "IPF.Note"), folder("t2", "Projects (2)", "IPF.Note")]
        [plan] = map_folders(source, target, frozenset(ALL)).plans
        assert (plan.target, plan.name) == (None, "Projects (3)")
        assert plan.workload is Workload.CONTACTS

    def test_two_source_folders_of_one_name_in_one_parent_do_not_collide(self) -> None:
        source = [folder("a", "Work"), folder("b", "work", "IPF.Task")]
        names = [p.name for p in map_folders(source, [], frozenset(ALL)).plans]
        assert names == ["Work", "work (2)"]

    def test_the_recorded_mapping_wins(self) -> None:
        source = [folder("s", "Renamed")]
        target = [folder("t-old", "Old name"), folder("t-new", "Renamed")]
        [plan] = map_folders(source, target, frozenset(ALL), {"s": "t-old"}).plans
        assert plan.target == "t-old"

    def test_a_recorded_target_that_is_gone_is_mapped_again(self) -> None:
        [plan] = map_folders([folder("s", "X")], [], frozenset(ALL), {"s": "gone"}).plans
        assert (plan.target, plan.name) == (None, "X")
