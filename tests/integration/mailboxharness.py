"""The two mailboxes of an ``ExchangeMailbox`` contract test, through the port, with their "server"
side to change between passes: ``GraphHarness`` (``GraphMailbox`` over the FAKE Graph) and
``MemoryHarness`` (the in-memory fake, adapters/memory/exchange.py, written by another helper)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailferry.adapters.graph.mailbox import GraphMailbox
from mailferry.adapters.graph.session import GraphSession
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.mailboxports import ExchangeMailbox
from mailferry.sandbox.graph import mailboxfill
from mailferry.sandbox.graph.server import FakeGraph, Fault

try:  # the in-memory fake comes from another branch; its harness runs once both are merged
    from mailferry.adapters.memory import exchange as memory_exchange
except ImportError:  # pragma: no cover - only before the merge
    memory_exchange = None

ROLES = (
    "User.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ImportExport.All",
)
APP = "mailferry-test"
SOURCE, TARGET = "alice@contoso.com", "bob@contoso.com"


class Harness(Protocol):
    """Both mailboxes of a test through the port, and their "server" side to change them."""

    source: ExchangeMailbox
    target: ExchangeMailbox

    def well_known(self, side: str, name: str) -> str: ...

    def add_folder(self, side: str, parent: str | None, name: str, folder_class: str) -> str: ...

    def add_item(self, side: str, folder_id: str, kind: str, text: str = "x") -> str: ...

    def change(self, side: str, item_id: str, text: str) -> None: ...

    def delete(self, side: str, item_id: str) -> None: ...

    def content(self, side: str, item_id: str) -> Any: ...

    def key(self, side: str, item_id: str) -> str | None: ...

    def expire_delta_tokens(self) -> None: ...

    def lose_next_import_answer(self) -> None: ...


@dataclass
class StaticTokens:
    token_value: str

    def token(self, force_refresh: bool = False) -> str:
        return self.token_value


@dataclass
class Sleeps:
    """The session's ``sleep``: recorded, not slept (a test waits out nothing for real)."""

    slept: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def graph_session(fake: FakeGraph, upn: str, roles: tuple[str, ...] = ROLES) -> GraphSession:
    tokens = StaticTokens(fake.issue_token(APP, roles))
    return GraphSession(fake.url, upn, tokens, TlsOptions(ca_file=fake.ca_file), sleep=Sleeps())


# -- the FAKE Graph harness ----------------------------------------------------------------------
KINDS = {  # kind -> (item class, fill helper)
    "mail": "IPM.Note",
    "event": "IPM.Appointment",
    "contact": "IPM.Contact",
    "task": "IPM.Task",
    "note": "IPM.StickyNote",
}


class GraphHarness:
    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        self.boxes = {
            "source": fake.store.add_mailbox(SOURCE),
            "target": fake.store.add_mailbox(TARGET),
        }
        self.sessions = {side: graph_session(fake, box.upn) for side, box in self.boxes.items()}
        self.source = GraphMailbox(self.sessions["source"], SOURCE)
        self.target = GraphMailbox(self.sessions["target"], TARGET)

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()

    def well_known(self, side: str, name: str) -> str:
        return self.boxes[side].well_known(name).id

    def add_folder(self, side: str, parent: str | None, name: str, folder_class: str) -> str:
        box = self.boxes[side]
        return self.fake.store.add_folder(box, parent or box.root_id, name, folder_class).id

    def add_item(self, side: str, folder_id: str, kind: str, text: str = "x") -> str:
        box = self.boxes[side]
        folder = box.folders[folder_id]
        store = self.fake.store
        adders: dict[str, Callable[[], Any]] = {
            "mail": lambda: mailboxfill.add_mail(store, box, folder, subject=text),
            "event": lambda: mailboxfill.add_event(store, box, folder, subject=text),
            "contact": lambda: mailboxfill.add_contact(store, box, folder, name=text),
            "task": lambda: mailboxfill.add_task(store, box, folder, title=text),
            "note": lambda: mailboxfill.add_note(store, box, folder, text=text),
        }
        return str(adders[kind]().id)

    def _find(self, side: str, item_id: str) -> Any:
        found = self.boxes[side].find_item(item_id)
        assert found is not None, item_id
        return found

    def change(self, side: str, item_id: str, text: str) -> None:
        folder, item = self._find(side, item_id)
        props = {**item.props, "subject": text}
        self.fake.store.put_item(self.boxes[side], folder, item.item_class, props, item_id)

    def delete(self, side: str, item_id: str) -> None:
        folder, _ = self._find(side, item_id)
        self.fake.store.delete_item(self.boxes[side], folder, item_id)

    def content(self, side: str, item_id: str) -> Any:
        return mailboxfill.content(self._find(side, item_id)[1])

    def key(self, side: str, item_id: str) -> str | None:
        item = self._find(side, item_id)[1]
        if item.item_class == "IPM.Note":
            return str(item.props["internetMessageId"])
        if item.item_class == "IPM.Appointment":
            return str(item.props["cleanGlobalObjectId"])
        return str(item.props["searchKey"])

    def expire_delta_tokens(self) -> None:
        self.fake.expire_delta_tokens()

    def lose_next_import_answer(self) -> None:
        self.fake.fail(Fault("POST", "importItem", drop_after_commit=True))


# -- the in-memory fake's harness (adapters/memory/exchange.py, helper M2) ------------------------
class MemoryHarness:
    def __init__(self) -> None:
        assert memory_exchange is not None
        self.servers = {
            "source": memory_exchange.MemoryExchange("src"),
            "target": memory_exchange.MemoryExchange("dst"),
        }
        self.source = memory_exchange.MemoryMailbox(self.servers["source"])
        self.target = memory_exchange.MemoryMailbox(self.servers["target"])

    def close(self) -> None:
        return

    def well_known(self, side: str, name: str) -> str:
        return str(self.servers[side].well_known(name))

    def add_folder(self, side: str, parent: str | None, name: str, folder_class: str) -> str:
        return str(self.servers[side].add_folder(name, folder_class, parent))

    def add_item(self, side: str, folder_id: str, kind: str, text: str = "x") -> str:
        return str(self.servers[side].add(folder_id, text, item_class=KINDS[kind]))

    def change(self, side: str, item_id: str, text: str) -> None:
        self.servers[side].change(item_id, text)

    def delete(self, side: str, item_id: str) -> None:
        self.servers[side].delete(item_id)

    def content(self, side: str, item_id: str) -> Any:
        item = self.servers[side].find(item_id)[1]
        return item.item_class, item.key, item.body

    def key(self, side: str, item_id: str) -> str | None:
        return self.servers[side].find(item_id)[1].key  # type: ignore[no-any-return]

    def expire_delta_tokens(self) -> None:
        self.servers["source"].expire_tokens()
        self.servers["target"].expire_tokens()

    def lose_next_import_answer(self) -> None:
        self.servers["target"].fail_imports(memory_exchange.ANSWER_LOST)
