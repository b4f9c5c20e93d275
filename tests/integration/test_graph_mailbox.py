"""The ``ExchangeMailbox`` contract, run against every implementation of the port: ``GraphMailbox``
over the FAKE Graph (HTTPS, sandbox/graph) and the in-memory fake (adapters/memory/exchange.py),
so that neither can drift from the port's docstrings. Then what only the HTTP adapter has:
Graph's throttling, import sessions, access policies, pages (the FAKE Graph's own strictness is
in test_graph_fake_mailbox.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mailferry.adapters.graph.mailbox import EXPORT_CHUNK, GraphMailbox
from mailferry.domain.errors import (
    AccountError,
    AuthError,
    ConnectError,
    FolderError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
)
from mailferry.domain.mailboxmodel import Exported, MailboxEntry, gather
from mailferry.sandbox.graph import mailboxfill
from mailferry.sandbox.graph.server import FakeGraph, Fault
from tests.integration.mailboxharness import (
    APP,
    SOURCE,
    GraphHarness,
    Harness,
    MemoryHarness,
    graph_session,
    memory_exchange,
)

pytestmark = pytest.mark.integration

# ---- the factory list: every implementation of the port runs the contract below ----------------
IMPLEMENTATIONS = ["graph"]  # GraphMailbox over the FAKE Graph
if memory_exchange is not None:  # the in-memory fake, once helper M2's module is here
    IMPLEMENTATIONS.append("memory")


@pytest.fixture
def fake_graph(tmp_path: Path) -> Iterator[FakeGraph]:
    """A FAKE Graph of this test only (graph.md names it so; tests/graphfixtures.py may hold it)."""
    with FakeGraph(tmp_path / "graph") as fake:
        yield fake


@pytest.fixture(params=IMPLEMENTATIONS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "graph":
        with FakeGraph(tmp_path / "graph") as fake:
            made = GraphHarness(fake)
            yield made
            made.close()
    else:
        yield MemoryHarness()


@pytest.fixture
def graph(fake_graph: FakeGraph) -> Iterator[GraphHarness]:
    made = GraphHarness(fake_graph)
    yield made
    made.close()


def by_id(entries: tuple[MailboxEntry, ...]) -> dict[str, MailboxEntry]:
    return {entry.id: entry for entry in entries}


def copy_item(h: Harness, item_id: str, folder_id: str) -> tuple[str, str]:
    """Source item -> target folder through export and import; the target's (id, change key)."""
    (exported,) = list(h.source.export([item_id]))
    assert isinstance(exported, Exported)
    imported = h.target.import_item(folder_id, exported.data)
    return imported.id, imported.change_key


# == the contract ================================================================================
def test_folders_every_class_parents_first_root_left_out(harness: Harness) -> None:
    """Folders of every class, with their well-known names; a nested folder after its parent,
    whose id it names; the children of the root have no parent; the root is not listed."""
    parent = harness.add_folder("source", None, "Projects", "IPF.Note")
    child = harness.add_folder("source", parent, "2026", "IPF.Note")
    calendar = harness.add_folder("source", None, "Team calendar", "IPF.Appointment")
    folders = harness.source.folders()
    ids = [f.id for f in folders]
    named = {f.id: f for f in folders}
    assert ids.index(parent) < ids.index(child)
    assert named[child].parent_id == parent
    assert named[parent].parent_id is None
    assert named[calendar].folder_class == "IPF.Appointment"
    known = {f.well_known: f for f in folders if f.well_known}
    assert {"inbox", "sentitems", "calendar", "contacts", "tasks", "notes"} <= set(known)
    assert known["contacts"].folder_class == "IPF.Contact"
    assert known["inbox"].parent_id is None
    assert all(f.parent_id is None or f.parent_id in named for f in folders)  # no root


def test_create_folder_under_root_and_parent_and_refuse_duplicate(harness: Harness) -> None:
    top = harness.target.create_folder(None, "Imported", "IPF.Note")
    sub = harness.target.create_folder(top.id, "Calendars", "IPF.Appointment")
    assert (top.parent_id, top.name, top.folder_class) == (None, "Imported", "IPF.Note")
    assert (sub.parent_id, sub.folder_class) == (top.id, "IPF.Appointment")
    listed = {f.id: f for f in harness.target.folders()}
    assert listed[sub.id].parent_id == top.id
    assert listed[top.id].name == "Imported"
    with pytest.raises(FolderError):
        harness.target.create_folder(None, "imported", "IPF.Note")  # Exchange ignores case


def test_entries_full_pass_then_delta(harness: Harness) -> None:
    inbox = harness.well_known("source", "inbox")
    calendar = harness.well_known("source", "calendar")
    mails = [harness.add_item("source", inbox, "mail", f"m{i}") for i in range(3)]
    event = harness.add_item("source", calendar, "event")
    full = gather(harness.source.entries(inbox, None))
    assert set(by_id(full.changed)) == set(mails)
    assert full.removed == ()
    assert all(e.item_class.startswith("IPM.Note") and e.change_key for e in full.changed)
    assert by_id(full.changed)[mails[0]].key == harness.key("source", mails[0])
    (listed_event,) = gather(harness.source.entries(calendar, None)).changed
    assert (listed_event.id, listed_event.key) == (event, harness.key("source", event))

    harness.change("source", mails[0], "changed")
    harness.delete("source", mails[1])
    new = harness.add_item("source", inbox, "mail", "new")
    delta = gather(harness.source.entries(inbox, full.token))
    assert set(by_id(delta.changed)) == {mails[0], new}
    assert by_id(delta.changed)[mails[0]].change_key != by_id(full.changed)[mails[0]].change_key
    assert by_id(delta.changed)[new].key == harness.key("source", new)
    # A delta round carries what the whole listing does: class, change key, size.
    listed_new = by_id(delta.changed)[new]
    assert listed_new.item_class.startswith("IPM.Note") and listed_new.change_key
    assert listed_new.size is not None and listed_new.size > 0
    assert delta.removed == (mails[1],)
    quiet = gather(harness.source.entries(inbox, delta.token))
    assert (quiet.changed, quiet.removed) == ((), ())


def test_entries_come_a_page_at_a_time_with_the_token_last(harness: Harness) -> None:
    inbox = harness.well_known("source", "inbox")
    mails = [harness.add_item("source", inbox, "mail", f"m{i}") for i in range(230)]
    pages = list(harness.source.entries(inbox, None))
    assert len(pages) >= 3
    assert all(0 < len(p.changed) <= 100 and p.token is None for p in pages[:-1])
    assert pages[-1].token is not None
    listed = [e.id for p in pages for e in p.changed]
    assert sorted(listed) == sorted(mails)  # each once
    harness.change("source", mails[3], "changed")
    delta = list(harness.source.entries(inbox, pages[-1].token))
    assert [e.id for p in delta for e in p.changed] == [mails[3]]
    assert delta[-1].token is not None


def test_entries_keys_of_every_workload(harness: Harness) -> None:
    for kind, name in (("contact", "contacts"), ("task", "tasks"), ("note", "notes")):
        folder = harness.well_known("source", name)
        item = harness.add_item("source", folder, kind)
        (entry,) = gather(harness.source.entries(folder, None)).changed
        assert entry.key is not None
        assert entry.key == harness.key("source", item)


def test_entries_expired_token_is_sync_token_invalid(harness: Harness) -> None:
    inbox = harness.well_known("source", "inbox")
    harness.add_item("source", inbox, "mail")
    token = gather(harness.source.entries(inbox, None)).token
    harness.expire_delta_tokens()
    with pytest.raises(SyncTokenInvalidError):
        gather(harness.source.entries(inbox, token))
    assert len(gather(harness.source.entries(inbox, None)).changed) == 1  # a full pass still works


def test_export_streams_in_order_with_per_item_errors(harness: Harness) -> None:
    inbox = harness.well_known("source", "inbox")
    ids = [harness.add_item("source", inbox, "mail", f"m{i}") for i in range(EXPORT_CHUNK - 1)]
    asked = [*ids[:7], "no-such-item", *ids[7:]]
    results = list(harness.source.export(asked))
    assert [r.href if isinstance(r, ItemError) else r.id for r in results] == asked
    errors = [r for r in results if isinstance(r, ItemError)]
    assert [e.href for e in errors] == ["no-such-item"]
    exported = [r for r in results if isinstance(r, Exported)]
    assert all(r.data and r.change_key for r in exported)
    assert len({r.data for r in exported}) == len(ids)


def test_import_create_then_update_and_stale_change_key(harness: Harness) -> None:
    inbox = harness.well_known("source", "inbox")
    target_inbox = harness.well_known("target", "inbox")
    source_id = harness.add_item("source", inbox, "mail", "first")
    target_id, change_key = copy_item(harness, source_id, target_inbox)
    assert harness.content("target", target_id) == harness.content("source", source_id)
    (listed,) = gather(harness.target.entries(target_inbox, None)).changed
    assert (listed.id, listed.key) == (target_id, harness.key("source", source_id))

    harness.change("source", source_id, "second")
    (exported,) = list(harness.source.export([source_id]))
    assert isinstance(exported, Exported)
    updated = harness.target.import_item(target_inbox, exported.data, (target_id, change_key))
    assert updated.id == target_id
    assert updated.change_key != change_key
    assert harness.content("target", target_id) == harness.content("source", source_id)
    with pytest.raises(ItemConflictError):  # the change key of before the update
        harness.target.import_item(target_inbox, exported.data, (target_id, change_key))


def test_import_refuses_data_no_export_made(harness: Harness) -> None:
    with pytest.raises(ItemError):
        harness.target.import_item(harness.well_known("target", "inbox"), b"not a stream")


def test_import_answer_lost_after_commit_is_connect_error_and_item_exists(
    harness: Harness,
) -> None:
    """The caller must see ConnectError (never a silent retry) and find the item by its key."""
    inbox = harness.well_known("source", "inbox")
    target_inbox = harness.well_known("target", "inbox")
    source_id = harness.add_item("source", inbox, "mail")
    (exported,) = list(harness.source.export([source_id]))
    assert isinstance(exported, Exported)
    harness.lose_next_import_answer()
    with pytest.raises(ConnectError):
        harness.target.import_item(target_inbox, exported.data)
    (found,) = gather(harness.target.entries(target_inbox, None)).changed
    assert found.key == harness.key("source", source_id)


# == what only GraphMailbox over the FAKE Graph has ==============================================
ITEM_GET = "/items/(?P<item>"  # the route of one item's GET, as the fake counts it


def calls(fake: FakeGraph, needle: str) -> int:
    return sum(n for name, n in fake.counters.calls.items() if needle in name)


def test_fake_graph_export_of_many_ids_goes_in_calls_of_20(graph: GraphHarness) -> None:
    inbox = graph.well_known("source", "inbox")
    ids = [graph.add_item("source", inbox, "mail", f"m{i}") for i in range(2 * EXPORT_CHUNK + 5)]
    results = list(graph.source.export(ids))
    assert [r.id for r in results if isinstance(r, Exported)] == ids
    assert calls(graph.fake, "exportItems") == 3


def test_fake_graph_whole_mailbox_copies_with_full_fidelity(graph: GraphHarness) -> None:
    """Every workload's items (flags, categories, attachments, a series with a moved occurrence
    and attendees, ...) arrive equal through export and import; nobody is invited."""
    source_box, target_box = graph.boxes["source"], graph.boxes["target"]
    items = mailboxfill.fill_mailbox(graph.fake.store, source_box)
    folders = {f.well_known: f.id for f in graph.target.folders() if f.well_known}
    for folder in graph.source.folders():
        entries = gather(graph.source.entries(folder.id, None)).changed
        for exported in graph.source.export([e.id for e in entries]):
            assert isinstance(exported, Exported)
            graph.target.import_item(folders[folder.well_known], exported.data)
    for name in ("inbox", "calendar", "contacts", "tasks", "notes"):
        source, target = source_box.well_known(name), target_box.well_known(name)
        assert mailboxfill.folder_contents(target) == mailboxfill.folder_contents(source)
    assert sum(len(f.items) for f in target_box.folders.values()) == len(items)
    assert target_box.invitations == 0


def test_fake_graph_import_session_renewed_after_expiry(graph: GraphHarness) -> None:
    inbox = graph.well_known("source", "inbox")
    target = graph.well_known("target", "inbox")
    first, second = (graph.add_item("source", inbox, "mail", s) for s in ("a", "b"))
    copy_item(graph, first, target)
    graph.fake.expire_import_sessions()
    copied, _ = copy_item(graph, second, target)  # the importUrl answers 401: a new session
    assert graph.content("target", copied) == graph.content("source", second)
    assert calls(graph.fake, "createImportSession") == 2
    assert calls(graph.fake, "importItem") == 3  # the one refused with 401 was sent again once


def test_fake_graph_import_session_per_folder_reused_then_renewed_before_expiry(
    graph: GraphHarness,
) -> None:
    inbox = graph.well_known("source", "inbox")
    ids = [graph.add_item("source", inbox, "mail", f"m{i}") for i in range(5)]
    other = graph.target.create_folder(None, "Other", "IPF.Note").id
    for item_id in ids[:3]:
        copy_item(graph, item_id, graph.well_known("target", "inbox"))
    copy_item(graph, ids[3], other)
    assert calls(graph.fake, "createImportSession") == 2  # one per target folder
    graph.fake.import_lifetime = 30.0  # a session this short is renewed before every use
    graph.fake.expire_import_sessions()
    copy_item(graph, ids[4], other)
    copy_item(graph, ids[0], other)
    assert calls(graph.fake, "createImportSession") == 4


def test_fake_graph_429_waited_out_and_counted(graph: GraphHarness) -> None:
    inbox = graph.well_known("source", "inbox")
    item = graph.add_item("source", inbox, "mail")
    graph.fake.fail(Fault("POST", "exportItems", status=429, retry_after=7), times=2)
    (result,) = list(graph.source.export([item]))
    assert isinstance(result, Exported)
    session = graph.sessions["source"]
    assert session.stats.throttled == 2
    assert session.stats.waited == 14.0


def test_fake_graph_fifth_concurrent_request_never_sent(graph: GraphHarness) -> None:
    """Exports and imports at once, 8 threads: the session never has a 5th request in flight, so
    the FAKE Graph never answers 429."""
    inbox = graph.well_known("source", "inbox")
    target = graph.well_known("target", "inbox")
    ids = [graph.add_item("source", inbox, "mail", f"m{i}") for i in range(8 * EXPORT_CHUNK)]
    exported = [r for r in graph.source.export(ids) if isinstance(r, Exported)]
    graph.fake.delay = 0.03
    with ThreadPoolExecutor(8) as pool:
        pending = pool.submit(lambda: list(graph.source.export(ids)))
        list(pool.map(lambda e: graph.target.import_item(target, e.data), exported[:40]))
        assert len(pending.result()) == len(ids)
    in_flight = graph.fake.counters.max_in_flight
    source_id, target_id = (graph.boxes[side].mailbox_id for side in ("source", "target"))
    assert 2 <= in_flight[(APP, source_id)] <= 4
    assert 2 <= in_flight[("import", target_id)] <= 4
    assert graph.fake.counters.throttled == 0


def test_fake_graph_access_policy_is_auth_error_naming_the_mailbox(graph: GraphHarness) -> None:
    graph.fake.denied[APP] = {SOURCE}
    with pytest.raises(AuthError, match=re.escape(SOURCE)):
        graph.source.folders()


def test_fake_graph_missing_permission_is_auth_error(fake_graph: FakeGraph) -> None:
    box = fake_graph.store.add_mailbox(SOURCE)
    roles = ("User.Read.All", "MailboxFolder.Read.All", "MailboxItem.Export.All")
    with graph_session(fake_graph, SOURCE, roles) as session:
        mailbox = GraphMailbox(session, SOURCE)
        with pytest.raises(AuthError, match="ErrorAccessDenied"):  # no MailboxItem.Read.All
            gather(mailbox.entries(box.well_known("inbox").id, None))


def test_fake_graph_unknown_user_is_account_error(fake_graph: FakeGraph) -> None:
    with (
        graph_session(fake_graph, "nobody@contoso.com") as session,
        pytest.raises(AccountError, match=r"nobody@contoso\.com"),
    ):
        GraphMailbox(session, "nobody@contoso.com").folders()


@pytest.mark.parametrize(
    ("kind", "knob", "code"),
    [
        ("event", None, "ErrorCannotCreateCalendarItemInNonCalendarFolder"),
        ("mail", 200, "ErrorMessageSizeExceeded"),
    ],
)
def test_fake_graph_import_refusals_carry_graph_code(
    graph: GraphHarness, kind: str, knob: int | None, code: str
) -> None:
    folder = graph.well_known("source", "calendar" if kind == "event" else "inbox")
    item = graph.add_item("source", folder, kind)
    if knob is not None:
        graph.fake.max_item_bytes = knob
    with pytest.raises(ItemError, match=code):
        copy_item(graph, item, graph.well_known("target", "inbox"))


def test_fake_graph_pages_and_key_lookups(graph: GraphHarness) -> None:
    """Small pages are followed; a few changed items get their keys one by one, many by one
    listing of the folder."""
    graph.fake.page_size = 4
    inbox = graph.well_known("source", "inbox")
    ids = [graph.add_item("source", inbox, "mail", f"m{i}") for i in range(70)]
    full = gather(graph.source.entries(inbox, None))
    assert {e.id: e.key for e in full.changed} == {i: graph.key("source", i) for i in ids}
    for item_id in ids[:2]:
        graph.change("source", item_id, "again")
    before = calls(graph.fake, ITEM_GET)
    few = gather(graph.source.entries(inbox, full.token))
    assert {e.id for e in few.changed} == set(ids[:2])
    assert calls(graph.fake, ITEM_GET) - before == 2  # one GET per changed item
    for item_id in ids:
        graph.change("source", item_id, "all")
    many = gather(graph.source.entries(inbox, few.token))
    assert {e.id: e.key for e in many.changed} == {i: graph.key("source", i) for i in ids}
