"""sync_mailboxes and verify_mailboxes through GraphMailbox over the FAKE Graph: every workload,
an import whose answer is lost, a second pass that copies nothing, a lost state recognised by key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailferry.adapters.memory.mailboxstate import MemoryMailboxStateStore
from mailferry.domain.mailboxmodel import gather
from mailferry.domain.workloads import Workload
from mailferry.sandbox.graph.server import FakeGraph
from mailferry.service.graphcontext import GraphSyncOptions
from mailferry.service.graphsync import sync_mailboxes
from mailferry.service.graphverify import verify_mailboxes
from mailferry.service.resilience import RetryPolicy
from tests.integration.mailboxharness import GraphHarness

pytestmark = pytest.mark.integration
FAST = GraphSyncOptions(retry=RetryPolicy(attempts=2, base_wait=0.0, max_wait=0.0))
KINDS = {
    "inbox": "mail",
    "calendar": "event",
    "contacts": "contact",
    "tasks": "task",
    "notes": "note",
}


def shown(content: object) -> str:
    return json.dumps(content, sort_keys=True, default=str)


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphHarness]:
    with FakeGraph(tmp_path / "graph") as fake:
        made = GraphHarness(fake)
        yield made
        made.close()


def test_a_whole_mailbox_through_the_fake_graph_converges(graph: GraphHarness) -> None:
    """FAKE Graph: every workload copied with its content, a lost answer settled by key, a second
    pass copies nothing, verify finds every copy, a lost state finds them again by key."""
    items = {}
    for folder, kind in KINDS.items():
        where = graph.well_known("source", folder)
        items[folder] = [graph.add_item("source", where, kind, f"{kind} {n}") for n in range(3)]
    work = graph.add_folder("source", graph.well_known("source", "inbox"), "Work", "IPF.Note")
    graph.add_item("source", work, "mail", "in a sub-folder")
    state = MemoryMailboxStateStore()
    graph.lose_next_import_answer()
    first = sync_mailboxes(graph.source, graph.target, state, "p", FAST)
    assert first.items_failed == 0, first.as_json()
    assert {w: r.copied for w, r in first.workloads.items()} == {
        Workload.MAIL: 4,
        Workload.CALENDAR: 3,
        Workload.CONTACTS: 3,
        Workload.TASKS: 3,
        Workload.NOTES: 3,
    }
    assert first.retries == 1
    for folder, ids in items.items():
        copies = gather(graph.target.entries(graph.well_known("target", folder), None)).changed
        assert len(copies) == len(ids), folder
        wanted = sorted(shown(graph.content("source", i)) for i in ids)
        assert sorted(shown(graph.content("target", c.id)) for c in copies) == wanted
    second = sync_mailboxes(graph.source, graph.target, state, "p", FAST)
    assert sum(r.copied + r.updated for r in second.workloads.values()) == 0
    assert verify_mailboxes(graph.source, graph.target, state, "p").ok
    state.lose()
    third = sync_mailboxes(graph.source, graph.target, state, "p", FAST)
    assert sum(r.copied for r in third.workloads.values()) == 0, third.as_json()
    assert sum(r.already_there for r in third.workloads.values()) == 16
