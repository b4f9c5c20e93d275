"""File sources under random changes, runs that crash after writing, and lost state.

A Maildir or an mbox (changed with Python's ``mailbox``, as a mail client would: messages added,
flags changed, messages deleted, the file rewritten) is migrated to the in-memory server again and
again. Every change but flags gives the folder a new UIDVALIDITY (``adapters/files/account.py``),
so those passes match afresh: the invariants are that every message that was in the source at a
run is on the target exactly once, and carries the flags it had on the source at the last run.
"""

from __future__ import annotations

import mailbox
import tempfile
from collections import Counter
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mailferry.adapters.files import MaildirAccount, MboxAccount
from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.service.migrate import Migration, SyncOptions

STATUS = {"S": "R", "F": "F", "R": "A"}  # mbox: Status R, X-Status F/A


class FileSourceMachine(RuleBasedStateMachine):
    kind = "maildir"

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        root = Path(self.directory.name)
        if self.kind == "maildir":
            self.box: mailbox.Mailbox = mailbox.Maildir(root / "md")
        else:
            self.box = mailbox.mbox(root / "in.mbox")
        self.path = root / ("md" if self.kind == "maildir" else "in.mbox")
        self.server = MemoryServer(delimiter="/")
        self.store = MemoryStateStore()
        self.counter = 0
        self.copied_bodies: Counter[bytes] = Counter()  # what must be on the target
        self.last_flags: dict[bytes, frozenset[str]] = {}

    def teardown(self) -> None:
        self.box.close()
        self.directory.cleanup()

    def _body(self, number: int) -> bytes:
        mid = f"Message-ID: <m{number}@x>\r\n" if number % 3 else ""  # some only by content hash
        return f"{mid}Subject: {number}\r\n\r\nbody {number}\r\n".encode()

    @rule(letters=st.sets(st.sampled_from("SFR")))
    def add(self, letters: set[str]) -> None:
        self.counter += 1
        body = self._body(self.counter).replace(b"\r\n", b"\n")
        self.box.add(self._message(body, letters))
        self.box.flush()

    @rule(pick=st.integers(0, 100), letters=st.sets(st.sampled_from("SFR")))
    def set_flags(self, pick: int, letters: set[str]) -> None:
        keys = sorted(self.box.keys())
        if keys:
            key = keys[pick % len(keys)]
            message = self.box.get_message(key)  # keeps its date (mtime, From line)
            self._set_flags(message, letters)
            self.box[key] = message
            self.box.flush()

    @rule(pick=st.integers(0, 100))
    def remove(self, pick: int) -> None:
        keys = sorted(self.box.keys())
        if keys:
            self.box.remove(keys[pick % len(keys)])
            self.box.flush()

    @rule(crash_after=st.one_of(st.none(), st.integers(1, 3)))
    def run(self, crash_after: int | None) -> None:
        source = self._account()
        target = MemoryAccount(self.server, crash_after=crash_after)
        try:
            Migration(source, target, self.store, "p", SyncOptions(batch_count=2)).run()
        except ConnectError:
            return  # the next run settles what this one left in flight
        self._note_source()

    @rule()
    def lose_state(self) -> None:
        self.store = MemoryStateStore()

    @invariant()
    def never_a_duplicate(self) -> None:
        on_target = Counter(m.body for m in self.server.folder("INBOX").messages.values())
        assert all(count == 1 for count in on_target.values()), on_target
        assert set(on_target) <= self._ever_added()

    def _note_source(self) -> None:
        account = self._account()
        metas = list(account.fetch_meta("INBOX"))
        fetched = {f.uid: f.body.read() for f in account.fetch_messages("INBOX", metas)}
        for meta in metas:
            self.copied_bodies[fetched[meta.uid]] = 1
            self.last_flags[fetched[meta.uid]] = meta.flags
        on_target = {m.body: m.flags for m in self.server.folder("INBOX").messages.values()}
        assert set(self.copied_bodies) <= set(on_target)
        for body in fetched.values():
            assert on_target[body] == self.last_flags[body], body

    def _ever_added(self) -> set[bytes]:
        return {self._body(n) for n in range(1, self.counter + 1)}

    def _account(self) -> MaildirAccount | MboxAccount:
        if self.kind == "maildir":
            return MaildirAccount(self.path)
        return MboxAccount(self.path)

    def _message(self, body: bytes, letters: set[str]) -> mailbox.Message:
        message: mailbox.Message
        if self.kind == "maildir":
            message = mailbox.MaildirMessage(body)
            message.set_subdir("cur")
        else:
            message = mailbox.mboxMessage(body)
        self._set_flags(message, letters)
        return message

    def _set_flags(self, message: mailbox.Message, letters: set[str]) -> None:
        if isinstance(message, mailbox.MaildirMessage):
            message.set_flags("".join(sorted(letters)))
        elif isinstance(message, mailbox.mboxMessage):
            message.set_flags("".join(STATUS[c] for c in sorted(letters)))


class MboxSourceMachine(FileSourceMachine):
    kind = "mbox"


TestMaildirSource = FileSourceMachine.TestCase
TestMaildirSource.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestMboxSource = MboxSourceMachine.TestCase
TestMboxSource.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
