"""The calendar and contacts planner: pure functions from listings and state to what must be done.

As ``plan`` does for mail: the service lists both collections (href, ETag, identity) and reads the state
rows, asks ``plan_items`` what to do, and executes the answer (PUT ``If-None-Match: *`` for a create,
PUT ``If-Match`` for an update). One collection pass, as a truth table:

    state row   source item             target item                    action
    ---------   ---------------------   ----------------------------   ------------------------------
    none        present                 same identity present          skip-existing (record the pair)
    none        present                 absent                         create
    recorded    same ETag               same ETag                      unchanged
    recorded    ETag changed            same ETag                      update (If-Match: recorded ETag)
    recorded    any                     ETag changed                   conflict (left alone, reported)
    recorded    any                     gone                           deleted-on-target (left alone)
    recorded    gone (identity gone)    any                            deleted-on-source (reported only)
    -           second of one identity  any                            duplicate (reported, not copied)

Collections are mapped by ``map_collections``: by name, defaults to defaults, created when missing, or
everything into the target's default when the target cannot create collections.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailferry.domain.items import Collection, CollectionKind, ItemKey

_SAFE_NAME = re.compile(r"[A-Za-z0-9@._-]{1,100}")


@dataclass(frozen=True)
class Listed:
    """One item as a listing shows it (getetag, plus the identity read from its data)."""

    href: str
    etag: str | None
    key: ItemKey


@dataclass(frozen=True)
class Recorded:
    """A state row: this source item, as of this ETag, was written there on the target."""

    source_href: str
    source_etag: str | None
    key: ItemKey
    target_href: str
    target_etag: str | None


class Step(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIP_EXISTING = "skip-existing"
    CONFLICT = "conflict"
    DELETED_ON_SOURCE = "deleted-on-source"
    DELETED_ON_TARGET = "deleted-on-target"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Action:
    step: Step
    key: ItemKey
    source_href: str | None
    target_href: str | None
    if_match: str | None = None  # the ETag an update's PUT must carry (or the matched item's ETag)
    reason: str | None = None


def plan_items(
    source: Sequence[Listed],
    target: Sequence[Listed],
    state: Sequence[Recorded],
    *,
    suffix: str = ".ics",
) -> list[Action]:
    """What one pass over one collection does; ``suffix`` names new target resources (.ics, .vcf)."""
    rows = {row.source_href: row for row in state}
    kept, actions = _deduplicate(source, rows)
    on_target = {item.href: item for item in target}
    by_key: dict[ItemKey, Listed] = {}
    for item in sorted(target, key=lambda i: i.href):
        by_key.setdefault(item.key, item)
    taken = {_last_segment(href) for href in on_target}
    for item in kept:
        row = rows.get(item.href)
        if row is not None and row.key == item.key:
            actions.append(_recorded(item, row, on_target.get(row.target_href)))
            continue
        hit = by_key.get(item.key)
        if hit is not None:
            actions.append(Action(Step.SKIP_EXISTING, item.key, item.href, hit.href, hit.etag))
            continue
        name = target_name(item.key, suffix, taken)
        taken.add(name)
        actions.append(Action(Step.CREATE, item.key, item.href, name))
    keys = {item.key for item in kept}
    listed = {item.href for item in source}
    for row in sorted(state, key=lambda r: r.source_href):
        if row.source_href not in listed and row.key not in keys:
            reason = "deleted on the source: left on the target"
            actions.append(
                Action(
                    Step.DELETED_ON_SOURCE, row.key, row.source_href, row.target_href, None, reason
                )
            )
    return actions


def _deduplicate(
    source: Sequence[Listed], rows: dict[str, Recorded]
) -> tuple[list[Listed], list[Action]]:
    """One item per identity (the one the state knows, else the first href); the others reported."""
    ordered = sorted(source, key=lambda i: (i.href not in rows, i.href))
    first: dict[ItemKey, Listed] = {}
    duplicates: list[Action] = []
    for item in ordered:
        if item.key in first:
            reason = f"same {item.key.describe()} as {first[item.key].href}: not copied"
            duplicates.append(Action(Step.DUPLICATE, item.key, item.href, None, None, reason))
        else:
            first[item.key] = item
    return sorted(first.values(), key=lambda i: i.href), duplicates


def _recorded(item: Listed, row: Recorded, there: Listed | None) -> Action:
    if there is None:
        reason = "deleted on the target since it was copied: left alone"
        return Action(Step.DELETED_ON_TARGET, item.key, item.href, row.target_href, None, reason)
    source_changed = item.etag != row.source_etag
    if there.etag != row.target_etag:
        both = "on both sides" if source_changed else "on the target only"
        reason = f"changed {both} since it was copied: the target's version is left alone"
        return Action(Step.CONFLICT, item.key, item.href, there.href, there.etag, reason)
    if source_changed:
        return Action(Step.UPDATE, item.key, item.href, there.href, row.target_etag)
    return Action(Step.UNCHANGED, item.key, item.href, there.href, there.etag)


def target_name(key: ItemKey, suffix: str, taken: set[str]) -> str:
    """The resource name of a new target item: its UID when URL-safe (Google wants that), else a hash."""
    if key.uid is not None and _SAFE_NAME.fullmatch(key.uid) and key.uid + suffix not in taken:
        return key.uid + suffix
    digest = hashlib.sha256((key.uid or key.content or "").encode()).hexdigest()[:32]
    name, counter = digest + suffix, 1
    while name in taken:
        counter += 1
        name = f"{digest}-{counter}{suffix}"
    return name


def _last_segment(href: str) -> str:
    return href.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CollectionMapping:
    """Where one source collection's items go: an existing target collection, or one to create."""

    source: Collection
    target: str | None  # the target collection's name; None: nowhere to put them (reported)
    create: bool = False
    note: str | None = None  # why it went elsewhere, or what the target refuses


def map_collections(
    source: Sequence[Collection], target: Sequence[Collection], *, can_create: bool
) -> list[CollectionMapping]:
    """Defaults to defaults, then by name, then by display name; the rest created (or to the default)."""
    claimed: set[tuple[CollectionKind, str]] = set()
    names = {(c.kind, c.name) for c in target}
    out = []
    for collection in sorted(source, key=lambda c: (c.kind, not c.default, c.name)):
        mapping = _map_one(collection, target, claimed, can_create=can_create)
        if mapping.create and mapping.target is not None:
            name = _free_name(collection.kind, mapping.target, names)
            names.add((collection.kind, name))
            mapping = CollectionMapping(collection, name, create=True, note=mapping.note)
        if mapping.target is not None:
            claimed.add((collection.kind, mapping.target))
        out.append(mapping)
    return out


def _map_one(
    collection: Collection,
    target: Sequence[Collection],
    claimed: set[tuple[CollectionKind, str]],
    *,
    can_create: bool,
) -> CollectionMapping:
    same_kind = [c for c in target if c.kind == collection.kind]
    default = next((c for c in same_kind if c.default), same_kind[0] if same_kind else None)
    # never matched to a collection that takes none of its components (a task list to an event
    # calendar: Microsoft 365 keeps them apart); created instead, or the default as a fallback
    free = [
        c
        for c in same_kind
        if (c.kind, c.name) not in claimed
        and (not collection.components or any(c.accepts(k) for k in collection.components))
    ]
    match = (
        (default if collection.default and default is not None and default in free else None)
        or next((c for c in free if c.name == collection.name), None)
        or next((c for c in free if _shown(collection) and _shown(c) == _shown(collection)), None)
    )
    if match is not None:
        return CollectionMapping(collection, match.name, note=_refused(collection, match))
    if can_create:
        return CollectionMapping(collection, collection.name, create=True)
    if default is None:
        return CollectionMapping(collection, None, note=f"the target has no {collection.kind}")
    note = (
        f"the target cannot create collections: into its default {collection.kind} '{default.name}'"
    )
    refused = _refused(collection, default)
    return CollectionMapping(
        collection, default.name, note=f"{note}; {refused}" if refused else note
    )


def _shown(collection: Collection) -> str | None:
    return collection.display_name.casefold() if collection.display_name else None


def _refused(collection: Collection, target: Collection) -> str | None:
    missing = sorted(c for c in collection.components if not target.accepts(c))
    return f"'{target.name}' does not accept {', '.join(missing)}" if missing else None


def _free_name(kind: CollectionKind, wanted: str, names: set[tuple[CollectionKind, str]]) -> str:
    name, counter = wanted, 1
    while (kind, name) in names:
        counter += 1
        name = f"{wanted}-{counter}"
    return name
