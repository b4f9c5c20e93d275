"""Label folders (Gmail, ``--labels once``) under random mail, label changes, crashes and lost state.

The invariants: no target folder ever holds more copies of a message than its source folder; after
a full run every message is on the target, in a folder that has it on the source; and, as long as
the state database was never lost, each message is on the target exactly as often as the source
folder holding it most often (once, for an ordinary Gmail message in several labels). Runs on the
in-memory fake server.
"""

from __future__ import annotations

from collections import Counter

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.labels import LabelMode
from mailferry.domain.profiles import GMAIL, label_policy
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.windows import WINDOW
from tests.fakes import BASE
from tests.fakes import message_key as key

FOLDERS = {
    "INBOX": "INBOX",
    "Work": "Work",
    "[Gmail]/Sent Mail": "[Gmail].Sent Mail",
    "[Gmail]/All Mail": "[Gmail].All Mail",
}
LABELS = ["INBOX", "Work", "[Gmail]/Sent Mail"]
ALL_MAIL = "[Gmail]/All Mail"
PAIR = "gmail -> dst"
POLICY = label_policy(GMAIL, LabelMode.ONCE)


class LabelMachine(RuleBasedStateMachine):
    WINDOW = WINDOW  # source UIDs per window of a folder pass

    def __init__(self) -> None:
        super().__init__()
        self.src = MemoryServer(delimiter="/")
        self.dst = MemoryServer(delimiter=".")
        self.src.create("[Gmail]")
        for name in FOLDERS:
            self.src.create(name, "\\All" if name == ALL_MAIL else None)
        self.store = MemoryStateStore()
        self.counter = 0
        self.synced = False
        self.lost = False

    def _options(self, batch: int) -> SyncOptions:
        return SyncOptions(batch_count=batch, labels=POLICY, window=self.WINDOW)

    @rule(
        labels=st.sets(st.sampled_from(LABELS), max_size=3),
        with_id=st.booleans(),
        same_text=st.booleans(),
    )
    def new_mail(self, labels, with_id, same_text):
        """A new message: in All Mail always, and in each of its labels (none: archived)."""
        self.counter += 1
        n = 0 if same_text else self.counter  # n == 0: byte-identical to an earlier message
        head = f"Message-ID: <{n}@x>\r\n" if with_id else ""
        body = f"{head}Subject: {n}\r\n\r\nbody {n}\r\n".encode()
        when = BASE.replace(year=2010 + n % 15)
        for folder in [*sorted(labels), ALL_MAIL]:
            self.src.folder(folder).add(body, frozenset({"\\Seen"}), when)
        self.synced = False

    @rule(data=st.data(), label=st.sampled_from(LABELS))
    def add_label(self, data, label):
        """An existing message gets one more label: it now shows in that folder too."""
        messages = list(self.src.folder(ALL_MAIL).messages.values())
        if messages:
            m = data.draw(st.sampled_from(messages))
            box = self.src.folder(label)
            if key(m.body, m.internaldate) not in {
                key(x.body, x.internaldate) for x in box.messages.values()
            }:
                box.add(m.body, m.flags, m.internaldate)
                self.synced = False

    @rule(crash_after=st.integers(0, 5))
    def interrupted_sync(self, crash_after):
        target = MemoryAccount(self.dst, crash_after=crash_after)
        try:
            Migration(MemoryAccount(self.src), target, self.store, PAIR, self._options(2)).run()
        except ConnectError:
            self.synced = False
        else:
            self.synced = True

    @rule()
    def sync(self):
        migration = Migration(
            MemoryAccount(self.src), MemoryAccount(self.dst), self.store, PAIR, self._options(3)
        )
        assert migration.run().failures == []
        self.synced = True

    @rule()
    def lose_state(self):
        self.store = MemoryStateStore()
        self.lost = True

    def _counts(self, server: MemoryServer, names) -> dict[str, Counter[tuple[str, int]]]:
        return {
            name: Counter(
                key(m.body, m.internaldate) for m in server.folder(name).messages.values()
            )
            for name in names
            if name in server.folders
        }

    @invariant()
    def no_folder_gets_more_than_its_source_has(self):
        src = self._counts(self.src, FOLDERS)
        dst = self._counts(self.dst, FOLDERS.values())
        for source_name, target_name in FOLDERS.items():
            extra = dst.get(target_name, Counter()) - src[source_name]
            assert not extra, f"{target_name} holds messages its source folder does not"

    @invariant()
    def once_means_once(self):
        if self.lost:
            return  # see the module docstring: a lost state may copy a relabelled message again
        src = self._counts(self.src, FOLDERS)
        total = sum(self._counts(self.dst, FOLDERS.values()).values(), Counter())
        most = Counter()
        for counts in src.values():
            most |= counts
        assert not total - most, "a message is on the target more often than any folder has it"

    @precondition(lambda self: self.synced)
    @invariant()
    def complete_after_a_full_run(self):
        src = self._counts(self.src, FOLDERS)
        total = sum(self._counts(self.dst, FOLDERS.values()).values(), Counter())
        most = Counter()
        for counts in src.values():
            most |= counts
        assert not most - total, "a message of the source is nowhere on the target"


LabelMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestLabelMachine = LabelMachine.TestCase


class WindowedLabelMachine(LabelMachine):
    """The same, folders walked two UIDs at a time: a label folder leaves out, window by window,
    what copies made in its earlier windows or in other folders stand for."""

    WINDOW = 2


WindowedLabelMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
TestWindowedLabelMachine = WindowedLabelMachine.TestCase
