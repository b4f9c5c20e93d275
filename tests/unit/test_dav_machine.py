"""Random calendar and contact changes, crashes between PUT and state commit, lost answers, lost
state, throttling, a full or failing target (refused PUTs stored or not); after a clean run the
target must have converged, with no duplicate.

The mail machine's invariant for calendars and address books: after any sequence of runs,
interrupted or not, every source item is on the target once (the same UID never twice in a
collection), and it shows the source's latest content unless the run reported why not (a
conflict: changed on the target, or found there with other content after the state was lost).
Runs on the strict in-memory DAV fake (adapters/memory/dav.py), verified by the same contract
suite as Radicale and Xandikos.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer, SimulatedCrash
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.domain.davmodel import CollectionKind, NewCollection
from mailferry.domain.errors import ConnectError
from mailferry.domain.items import identify
from mailferry.domain.normalise import content_differs
from mailferry.sandbox import davcorpus
from mailferry.service.davsync import DavOptions, sync_accounts
from mailferry.service.resilience import RetryPolicy

USER = "alice"
CAL = "/alice/calendars/calendar/"
WORK = "/alice/calendars/work/"
BOOK = "/alice/contacts/addressbook/"
FAST = DavOptions(retry=RetryPolicy(attempts=2, base_wait=0.0, max_wait=0.0), concurrency=3)


class DavMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.src = MemoryDavServer()
        self.dst = MemoryDavServer(reserialise=True, auto_schedule=True)
        self.src.add_user(USER)
        self.dst.add_user(USER)
        source = MemoryDavAccount(self.src, USER)
        source.create_collection(WORK, NewCollection(CollectionKind.CALENDAR, "Work"))
        self.state = MemoryItemStateStore()
        self.counter = 0
        self.items: dict[str, tuple[str, CollectionKind]] = {}  # source href -> (uid, kind)
        self.deleted: set[str] = set()  # UIDs deleted on the source

    def _run(self, target: MemoryDavAccount):
        return sync_accounts(MemoryDavAccount(self.src, USER), target, self.state, "p", FAST)

    @rule(where=st.sampled_from([CAL, WORK, BOOK]), shape=st.integers(0, 4))
    def new_item(self, where, shape):
        self.counter += 1
        uid = f"item-{self.counter}@machine"
        if where == BOOK:
            data, kind, name = (
                davcorpus.card(uid, f"P{self.counter} Q", photo=shape == 0),
                CollectionKind.ADDRESSBOOK,
                ".vcf",
            )
        else:
            makers = [
                davcorpus.simple_event,
                davcorpus.series,
                davcorpus.todo,
                davcorpus.meeting,
                davcorpus.all_day,
            ]
            data, kind, name = makers[shape](uid), CollectionKind.CALENDAR, ".ics"
        href = f"{where}n{self.counter}{name}"
        self.src.store(href, data)
        self.items[href] = (uid, kind)

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def change_on_source(self, data):
        href = data.draw(st.sampled_from(sorted(self.items)))
        uid, kind = self.items[href]
        self.counter += 1
        if kind is CollectionKind.ADDRESSBOOK:
            new = davcorpus.card(uid, f"Changed{self.counter} Q")
        else:
            new = davcorpus.simple_event(uid, f"Changed {self.counter}")
        self.src.store(href, new)

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def delete_on_source(self, data):
        href = data.draw(st.sampled_from(sorted(self.items)))
        uid, _kind = self.items.pop(href)
        self.src.delete(href)
        self.deleted.add(uid)

    @precondition(lambda self: self.items)
    @rule(data=st.data())
    def change_on_target(self, data):
        """Someone edits a copied item on the target: later runs must leave it alone."""
        copies = self._target_items()
        if not copies:
            return
        href = data.draw(st.sampled_from(sorted(copies)))
        uid = identify(copies[href]).uid or ""
        if href.startswith("/alice/contacts/"):
            self.dst.store(href, davcorpus.card(uid, "Edited There"))
        else:
            self.dst.store(href, davcorpus.simple_event(uid, "Edited on the target"))

    @rule(after=st.integers(0, 12))
    def crash_mid_run(self, after):
        target = MemoryDavAccount(self.dst, USER, crash_after_puts=after)
        with contextlib.suppress(SimulatedCrash):
            self._run(target)

    @rule(every=st.integers(1, 4), before=st.booleans())
    def run_losing_answers(self, every, before):
        target = MemoryDavAccount(self.dst, USER, drop_every=every, drop_before_write=before)
        with contextlib.suppress(ConnectError):  # the budget was spent: the next run resumes
            self._run(target)

    @rule()
    def throttled_run(self):
        self.dst.throttle_every = 5
        try:
            self._run(MemoryDavAccount(self.dst, USER))
        finally:
            self.dst.throttle_every = None

    @rule(room=st.integers(0, 3), stores=st.booleans(), every=st.integers(0, 3))
    def run_on_a_full_target(self, room, stores, every):
        """Room for about ``room`` more items, then 507; ``stores``: Radicale's way, the refused
        PUT is written all the same (its cache is what failed); ``every``: answers lost too."""
        self.dst.space, self.dst.store_refused = self.dst.used() + room * 400, stores
        target = MemoryDavAccount(self.dst, USER, drop_every=every or None)
        try:
            with contextlib.suppress(ConnectError):
                summary = self._run(target)
                assert summary.target_full or summary.items_remaining == 0
        finally:
            self.dst.space, self.dst.store_refused = None, False

    @rule(stores=st.booleans())
    def run_on_a_failing_target(self, stores):
        """Every PUT answered 500 (``stores``: Xandikos's way with a vCard at a .ics name)."""
        self.dst.fail_puts, self.dst.store_refused = True, stores
        try:
            self._run(MemoryDavAccount(self.dst, USER))
        finally:
            self.dst.fail_puts, self.dst.store_refused = False, False

    @rule(ignore=st.booleans())
    def target_ignores_preconditions(self, ignore):
        """Some servers write whatever If-None-Match says: the sync must look first."""
        self.dst.ignore_preconditions = ignore

    @rule()
    def lose_state(self):
        self.state.lose()

    @rule()
    def clean_run(self):
        self._run(MemoryDavAccount(self.dst, USER))

    def _target_items(self) -> dict[str, bytes]:
        out = {}
        for collection in self.dst.collections.values():
            for href, item in collection.items.items():
                out[href] = item.data
        return out

    @invariant()
    def never_a_duplicate(self):
        for collection in self.dst.collections.values():
            uids = Counter(identify(item.data).uid for item in collection.items.values())
            twice = [uid for uid, n in uids.items() if n > 1]
            assert not twice, f"{collection.href}: {twice} more than once"

    @invariant()
    def never_an_invitation(self):
        assert self.dst.sent == []

    def teardown(self):
        summary = self._run(MemoryDavAccount(self.dst, USER))
        reported = {c.uid for c in summary.conflicts}
        assert summary.failures == [], summary.failures
        on_target = {identify(d).uid: d for d in self._target_items().values()}
        for href, (uid, kind) in self.items.items():
            assert uid in on_target, f"{uid} never arrived"
            source = self.src.collection(href.rsplit("/", 1)[0] + "/").items[href].data
            differs = content_differs(kind, source, on_target[uid])
            assert differs is None or uid in reported, f"{uid}: {differs}, not reported"
        again = self._run(MemoryDavAccount(self.dst, USER))
        assert (again.items_copied, again.items_updated) == (0, 0)


TestDavMachine = DavMachine.TestCase
TestDavMachine.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
