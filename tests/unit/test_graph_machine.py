"""Random mailbox changes, crashes between import and state commit, lost answers, expired delta
tokens and lost state; after a clean run the target must have converged, with no duplicate.

The mail machine's invariant for whole Microsoft 365 mailboxes: after any sequence of runs,
interrupted or not, every source item has exactly one copy in its target folder (copies matched
by key, as a multiset: the same Message-ID twice in a folder needs two copies), with the source's
latest content. Items without a key cannot be recognised after a lost state or a lost answer:
for them the run must say so (``not_recognisable``) whenever it may have made a second copy, and
if the run that made it does not finish (it raises), or finishes but its summary is never
delivered (the process killed before printing it), a later run that finishes must: every copy
beyond the first is owed a report by a finished run, delivered, made after it appeared. Only a lost state
excuses one: of an item removed on the source before a run imports it again beside its copies
(which makes the doubt known again), nothing is left that knew of it.
Runs on the strict in-memory ExchangeMailbox fake (adapters/memory/exchange.py).
"""

from __future__ import annotations

import contextlib
from collections import Counter

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mailferry.adapters.memory.exchange import ImportFault, MemoryExchange, MemoryMailbox
from mailferry.adapters.memory.mailboxstate import MemoryMailboxStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.mailboxreport import MailboxSummary
from mailferry.service import graphsync
from mailferry.service.graphcontext import GraphSyncOptions
from mailferry.service.resilience import RetryPolicy

FAST = GraphSyncOptions(concurrency=3, retry=RetryPolicy(attempts=2, base_wait=0.0, max_wait=0.0))
NO_RETRY = GraphSyncOptions(
    concurrency=3, retry=RetryPolicy(attempts=0, base_wait=0.0, max_wait=0.0)
)
FOLDERS = [("inbox", "IPM.Note"), ("calendar", "IPM.Appointment"), ("Work", "IPM.Note")]
KEYS = ["<shared@x>", None, "unique"]  # a repeated key, no key, a key of its own


def version(n: int) -> str:
    """Every version of every item has a size of its own: after a lost state a copy found by key
    is compared by size only (domain/mailboxplan.py says why)."""
    return f"v{n}:" + "." * n


class GraphMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.src = MemoryExchange("src")
        self.dst = MemoryExchange("dst")
        inbox = self.src.well_known("inbox")
        work = self.src.add_folder("Work", parent=inbox)
        self.folders = {"inbox": inbox, "calendar": self.src.well_known("calendar"), "Work": work}
        self.state = MemoryMailboxStateStore()
        self.counter = 0
        self.origin: dict[bytes, str] = {}  # a version's body -> its item (bodies are unique)
        self.keyless: set[str] = set()
        self.most: Counter[str] = Counter()  # keyless item -> most copies seen on the target
        self.owed: set[str] = set()  # keyless items with a copy no finished run reported since
        self.forgotten: set[str] = set()  # owed, their doubts lost with the state since
        self.deleted: dict[str, Counter[str]] = {name: Counter() for name in self.folders}

    def _run(self, options: GraphSyncOptions = FAST, *, delivered: bool = True) -> MailboxSummary:
        try:
            summary = graphsync.sync_mailboxes(
                MemoryMailbox(self.src), MemoryMailbox(self.dst), self.state, "p", options
            )
        finally:
            self._count_copies()
        if delivered:  # the caller delivered the summary (printed it), then says so
            for report in summary.workloads.values():
                self.owed.difference_update(p.item for p in report.not_recognisable)
            graphsync.forget_reported(self.state, "p", summary)
        return summary

    def _count_copies(self) -> None:
        """A keyless item with more copies than ever before (and more than one) is owed a report
        (the target's copies are never removed, an update replaces one in place)."""
        there = Counter(
            self.origin.get(i.body) for f in list(self.dst.folders) for i in self.dst.items(f)
        )
        for item in self.keyless:
            if there[item] > max(1, self.most[item]):
                self.owed.add(item)
            if there[item] > self.most[item]:
                self.forgotten.discard(item)  # imported again: its doubt is known again
            self.most[item] = max(self.most[item], there[item])

    def _added(self, item: str) -> None:
        _folder, fake = self.src.find(item)
        self.origin[fake.body] = item
        if fake.key is None:
            self.keyless.add(item)

    @rule(folder=st.sampled_from(FOLDERS), key=st.sampled_from(KEYS))
    def new_item(self, folder: tuple[str, str], key: str | None) -> None:
        self.counter += 1
        name, item_class = folder
        real_key = f"<{self.counter}@x>" if key == "unique" else key
        body = version(self.counter)
        self._added(self.src.add(self.folders[name], body, item_class=item_class, key=real_key))

    @precondition(lambda self: self._source_items())
    @rule(data=st.data())
    def change_on_source(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self._source_items())))
        self.counter += 1
        self.src.change(item, version(self.counter))
        self._added(item)

    @precondition(lambda self: self._source_items())
    @rule(data=st.data())
    def delete_on_source(self, data: st.DataObject) -> None:
        items = self._source_items()
        item = data.draw(st.sampled_from(sorted(items)))
        _folder, fake = self.src.find(item)
        if fake.key is not None:
            self.deleted[items[item]][fake.key] += 1
        self.src.delete(item)
        if item in self.forgotten:
            self.owed.discard(item)

    @rule(
        faults=st.lists(st.sampled_from(list(ImportFault)), min_size=1, max_size=3),
        retried=st.booleans(),
    )
    def crash_between_import_and_commit(self, faults: list[ImportFault], *, retried: bool) -> None:
        """Imports whose answer is lost (stored, then the connection drops) or never sent."""
        self.dst.fail_imports(*faults)
        with contextlib.suppress(ConnectError):
            self._run(FAST if retried else NO_RETRY)
        self.dst.clear_faults()

    @rule()
    def expire_tokens(self) -> None:
        self.src.expire_tokens()

    @rule()
    def lose_state(self) -> None:
        """The doubts of items still on the source become known again when they are imported
        again (beside copies the state does not know); those of removed items are lost."""
        self.state.lose()
        self.owed &= set(self._source_items())
        self.forgotten = set(self.owed)

    @rule()
    def clean_run(self) -> None:
        self._run()

    @rule()
    def killed_before_delivery(self) -> None:
        """A run that finishes, its process killed before the summary is printed."""
        self._run(delivered=False)

    def _source_items(self) -> dict[str, str]:
        return {i.id: name for name, f in self.folders.items() for i in self.src.items(f)}

    def _target_folder(self, name: str) -> str | None:
        if name in ("inbox", "calendar"):
            return self.dst.well_known(name)
        inbox = self.dst.well_known("inbox")
        return next((f.id for f in self.dst.folders.values() if f.parent_id == inbox), None)

    @invariant()
    def no_keyed_item_twice(self) -> None:
        """Whatever happened, a key is never on the target more often than the source has it,
        plus the deleted source items' copies (kept on purpose); runs may be unfinished."""
        for name, folder in self.folders.items():
            there = self._target_folder(name)
            if there is None:
                continue
            source = Counter(i.key for i in self.src.items(folder) if i.key)
            target = Counter(i.key for i in self.dst.items(there) if i.key)
            kept = self.deleted[name]
            extra = {k: n for k, n in target.items() if n > source[k] + kept[k]}
            assert not extra, f"{name}: on the target too often: {extra}"

    def teardown(self) -> None:
        self.dst.clear_faults()
        summary = self._run()
        assert summary.items_failed == 0, summary.as_json()
        for name, folder in self.folders.items():
            there = self.dst.items(self._target_folder(name) or "")
            bodies = Counter(i.body for i in there)
            for item in self.src.items(folder):
                assert bodies[item.body] >= 1, f"{item.id} ({item.body!r}) never arrived"
            keyed = Counter(i.key for i in self.src.items(folder) if i.key)
            copies = Counter(i.key for i in there if i.key)
            for key, n in keyed.items():
                assert copies[key] >= n, f"{key}: {copies[key]} copies of {n}"
        assert not self.owed, f"{sorted(self.owed)} twice, not reported by a finished run"
        again = self._run()
        assert sum(r.copied + r.updated for r in again.workloads.values()) == 0
        assert all(not r.not_recognisable for r in again.workloads.values()), "reported again"


TestGraphMachine = GraphMachine.TestCase
TestGraphMachine.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
