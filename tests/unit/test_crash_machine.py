"""Random mail changes, crashes mid-copy, lost state and UIDVALIDITY changes; the target must converge.

The single invariant a migration tool lives by: after any sequence of runs, interrupted or not, every live
source message is on the target and nothing is on the target twice. Runs on the in-memory fake server.
"""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.plan import Selection, target_flags
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.windows import WINDOW
from tests.fakes import BASE
from tests.fakes import message_key as key

FOLDERS = {"INBOX": "INBOX", "Work": "Work", "Work/2024": "Work.2024", "Reçus & co": "Reçus & co"}
FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "$Label1"]
PAIR = "src -> dst"


class MigrationMachine(RuleBasedStateMachine):
    PHANTOM = False  # the target hands out a new UIDVALIDITY until a folder's first APPEND
    WINDOW = WINDOW  # source UIDs per window of a folder pass

    def __init__(self) -> None:
        super().__init__()
        self.src = MemoryServer(delimiter="/")
        self.dst = MemoryServer(delimiter=".", phantom_uidvalidity=self.PHANTOM)
        for name in FOLDERS:
            self.src.create(name)
        self.store = MemoryStateStore()
        self.counter = 0
        self.synced = False

    @rule(
        folder=st.sampled_from(sorted(FOLDERS)),
        with_id=st.booleans(),
        copies=st.integers(1, 3),
        flags=st.sets(st.sampled_from(FLAGS), max_size=3),
        same_text=st.booleans(),
    )
    def new_mail(self, folder, with_id, copies, flags, same_text):
        self.counter += 1
        n = 0 if same_text else self.counter
        head = f"Message-ID: <{n}@x>\r\n" if with_id else ""
        body = f"{head}Subject: {n}\r\n\r\nbody {n}\r\n".encode()
        box = self.src.folder(folder)
        for _ in range(copies):  # byte-identical copies, same INTERNALDATE
            box.add(body, frozenset(flags), BASE.replace(year=2010 + n % 15))
        self.synced = False

    @rule(data=st.data(), flags=st.sets(st.sampled_from(FLAGS), max_size=3))
    def change_flags(self, data, flags):
        folder = data.draw(st.sampled_from(sorted(FOLDERS)))
        box = self.src.folder(folder)
        if box.messages:
            uid = data.draw(st.sampled_from(sorted(box.messages)))
            box.set_flags(uid, frozenset(flags))
            self.synced = False

    @rule(crash_after=st.integers(0, 6))
    def interrupted_sync(self, crash_after):
        self._run_broken(MemoryAccount(self.dst, crash_after=crash_after))

    @rule(after=st.integers(0, 5))
    def listing_breaks_off(self, after):
        """The target's folder listing (lost-state matching reads it) breaks off half-way."""
        self._run_broken(MemoryAccount(self.dst, break_listing_after=after))

    def _run_broken(self, target: MemoryAccount) -> None:
        try:
            Migration(
                MemoryAccount(self.src),
                target,
                self.store,
                PAIR,
                SyncOptions(batch_count=3, window=self.WINDOW),
            ).run()
        except ConnectError:
            self.synced = False
        else:
            self.synced = True

    @rule()
    def sync(self):
        summary = Migration(
            MemoryAccount(self.src),
            MemoryAccount(self.dst),
            self.store,
            PAIR,
            SyncOptions(batch_count=4, window=self.WINDOW),
        ).run()
        assert summary.failures == []
        self.synced = True

    @rule()
    def lose_state(self):
        self.store = MemoryStateStore()

    @rule(folder=st.sampled_from(sorted(FOLDERS)))
    def uidvalidity_changes(self, folder):
        self.src.recreate(folder)

    @invariant()
    def never_a_duplicate(self):
        for source_name, target_name in FOLDERS.items():
            every = Counter(
                key(m.body, m.internaldate) for m in self.src.folder(source_name).messages.values()
            )
            if target_name not in self.dst.folders:
                continue
            there = Counter(
                key(m.body, m.internaldate) for m in self.dst.folder(target_name).messages.values()
            )
            for k, count in there.items():
                assert count <= every[k], (
                    f"{target_name}: {count} copies of a message the source has {every[k]} times"
                )

    @precondition(lambda self: self.synced)
    @invariant()
    def complete_and_faithful_after_a_full_run(self):
        for source_name, target_name in FOLDERS.items():
            box = self.src.folder(source_name)
            live = Counter(
                key(m.body, m.internaldate)
                for m in box.messages.values()
                if "\\Deleted" not in m.flags
            )
            there = Counter(
                key(m.body, m.internaldate) for m in self.dst.folder(target_name).messages.values()
            )
            assert live - there == Counter(), f"{target_name} is missing messages"
            singles = {
                k
                for k, c in Counter(
                    key(m.body, m.internaldate) for m in box.messages.values()
                ).items()
                if c == 1
            }
            by_key = {
                key(m.body, m.internaldate): m.flags
                for m in self.dst.folder(target_name).messages.values()
            }
            for m in box.messages.values():
                k = key(m.body, m.internaldate)
                if k in singles and "\\Deleted" not in m.flags:
                    assert by_key[k] == target_flags(m.flags, frozenset({"\\*"}), Selection())[0]


MigrationMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
TestMigrationMachine = MigrationMachine.TestCase


class CourierLikeMachine(MigrationMachine):
    """The same, against a target whose empty folders change UIDVALIDITY on every STATUS."""

    PHANTOM = True


CourierLikeMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
TestCourierLikeMachine = CourierLikeMachine.TestCase


class WindowedMachine(MigrationMachine):
    """The same, every folder of more than two messages planned and copied two UIDs at a time
    (a folder of a million messages is walked so, 20,000 at a time): lost-state matching
    window by window, crashes between windows."""

    WINDOW = 2


WindowedMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestWindowedMachine = WindowedMachine.TestCase
