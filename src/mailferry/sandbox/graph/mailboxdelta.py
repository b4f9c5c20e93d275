"""The FAKE Graph's delta rounds of the mailbox API: items of a folder and the folders of a mailbox.

From Microsoft's pages (microsoftgraph/microsoft-graph-docs-contrib): api-reference/v1.0/api/
mailboxitem-delta (``$select`` and ``$top``, ``Prefer: odata.maxpagesize``; ``$expand`` is not
among its options: refused), mailboxfolder-delta, and concepts/delta-query-overview: a round is
followed by ``@odata.nextLink`` (``$skipToken``) pages up to an ``@odata.deltaLink``
(``$deltaToken``) that starts the next round; removed instances are ``{"id", "@removed":
{"reason"}}``; "In case of an expired token, the service should respond with a 40X-series error
with error codes such as syncStateNotFound" (the fake: 410, as in "Synchronization reset").

A token stands for a ``DeltaRound`` kept by the fake (``fake.delta_rounds``): changes are the
items whose ``seq`` lies in the round's window, in ``seq`` order, so an item changed during a round
moves to the next one instead of being skipped. ``fake.expire_delta_tokens()`` forgets them all.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mailferry.sandbox.graph.mailbox import (
    FOLDER,
    FOLDER_READ,
    ITEM_READ,
    MBX,
    bad_query,
    count,
    find_folder,
    folder_json,
    item_json,
    mailbox_of,
    not_found,
    select_fields,
    self_link,
)
from mailferry.sandbox.graph.server import Answer, Call, error, route

if TYPE_CHECKING:
    from mailferry.sandbox.graph.server import FakeGraph
    from mailferry.sandbox.graph.store import FakeMailbox


@dataclass(frozen=True)
class DeltaRound:
    """What a ``$deltatoken`` or ``$skiptoken`` stands for: changes ``since < seq <= upto`` of one
    collection, those up to ``after`` already sent. A deltaLink's round starts at ``since``."""

    link: str  # "delta" or "skip"
    mailbox_id: str
    folder_id: str | None  # None: the folder collection
    since: int
    upto: int
    after: int
    initial: bool
    select: str | None


@route("GET", FOLDER + r"/items/delta", *ITEM_READ)
def items_delta(fake: FakeGraph, call: Call) -> Answer:
    """mailboxitem-delta: the items of a folder, then what changed; removed ones as @removed."""
    if "$expand" in call.query:
        return error(400, "BadRequest", "$expand is not supported on delta queries.")
    refused = bad_query(call, frozenset({"$select", "$top", "$deltatoken", "$skiptoken"}))
    if refused is not None:
        return refused
    box = mailbox_of(call)
    with fake.store.lock:
        folder = find_folder(box, call.match["folder"])
        if folder is None:
            return not_found()
        start = start_round(fake, call, box, folder.id)
        if isinstance(start, Answer):
            return start
        size = _page_size(fake, call)
        if isinstance(size, Answer):
            return size
        # the page's items rendered only (a 20,000-item round has 200 pages)
        found = sorted(
            (
                (item.seq, item)
                for item in folder.items.values()
                if start.after < item.seq <= start.upto
            ),
            key=lambda row: row[0],
        )
        rows: list[tuple[int, Any]] = [
            (seq, item_json(item)) if n <= size else (seq, None)
            for n, (seq, item) in enumerate(found)
        ]
        if not start.initial:
            rows += [
                (seq, {"id": item_id, "@removed": {"reason": "deleted"}})
                for item_id, seq in folder.removed.items()
                if start.after < seq <= start.upto
            ]
        rows.sort(key=lambda row: row[0])
        return delta_page(fake, call, start, rows, size)


@route("GET", MBX + r"/folders/delta", *FOLDER_READ)
def folders_delta(fake: FakeGraph, call: Call) -> Answer:
    """mailboxfolder-delta: every folder (one page), then what changed since the deltaLink."""
    refused = bad_query(call, frozenset({"$select", "$deltatoken"}))
    if refused is not None:
        return refused
    box = mailbox_of(call)
    start = start_round(fake, call, box, None)
    if isinstance(start, Answer):
        return start
    with fake.store.lock:
        rows = [
            (f.seq, folder_json(fake, box, f))
            for f in box.folders.values()
            if f.id != box.root_id and start.after < f.seq <= start.upto
        ]
        if not start.initial:
            rows += [
                (seq, {"id": fid, "@removed": {"reason": "deleted"}})
                for fid, seq in box.removed_folders.items()
                if start.after < seq <= start.upto
            ]
    return delta_page(fake, call, start, sorted(rows, key=lambda row: row[0]), len(rows) + 1)


def _page_size(fake: FakeGraph, call: Call) -> int | Answer:
    prefer = re.search(r"odata\.maxpagesize=(\d+)", call.headers.get("prefer", ""))
    if prefer is not None:
        return max(1, int(prefer[1]))
    return count(call, "$top", fake.page_size)


def start_round(
    fake: FakeGraph, call: Call, box: FakeMailbox, folder_id: str | None
) -> DeltaRound | Answer:
    """The round a delta request continues (a token) or starts (none)."""
    token = call.query.get("$deltatoken") or call.query.get("$skiptoken")
    if token is None:
        return DeltaRound(
            "skip", box.mailbox_id, folder_id, 0, box.seq, 0, initial=True, select=None
        )
    link = "delta" if "$deltatoken" in call.query else "skip"
    with fake.lock:
        known = fake.delta_rounds.get(token)
    expected = (link, box.mailbox_id, folder_id)
    if (
        not isinstance(known, DeltaRound)
        or (known.link, known.mailbox_id, known.folder_id) != expected
    ):
        return error(
            410,
            "SyncStateNotFound",
            "The sync state generation is not found. The delta token is expired and data must "
            "be synchronized again.",
        )
    if link == "delta":  # a new round: what changed since the last one ended, up to now
        return replace(known, link="skip", upto=box.seq)
    return known


def delta_page(
    fake: FakeGraph, call: Call, start: DeltaRound, rows: list[tuple[int, Any]], size: int
) -> Answer:
    """One page of a round: a nextLink while rows remain, else the deltaLink of the next round."""
    select = start.select or call.query.get("$select")
    chunk = rows[:size]
    token = secrets.token_urlsafe(18)
    if len(rows) > size:
        state = replace(start, after=chunk[-1][0], initial=start.initial, select=select)
        link = {"@odata.nextLink": self_link(fake, call, {"$skiptoken": token})}
    else:
        state = replace(start, link="delta", since=start.upto, after=start.upto, select=select)
        state = replace(state, initial=False)
        link = {"@odata.deltaLink": self_link(fake, call, {"$deltatoken": token})}
    with fake.lock:
        fake.delta_rounds[token] = state
    return Answer(
        200,
        {
            "@odata.context": f"{fake.url}/v1.0/$metadata#Collection(mailboxItem)",
            **link,
            "value": [select_fields(row, select) for _, row in chunk],
        },
    )
