"""Workloads (what moves: mail, calendars, contacts, tasks, notes) and the Microsoft Graph
application permissions (``roles`` in an app-only token) each one needs on each side.

Sources of the permission names: the "Permissions" table of each Graph v1.0 page used --
usersettings-list-exchange, mailbox-exportitems, mailbox-createimportsession, mailbox-list-folders
/ mailboxfolder-list-childfolders / mailbox-post-folders, mailboxfolder-list-items /
mailboxitem-delta, user-list-calendars / calendar-post-events, user-list-contactfolders,
todo-list-lists / todotasklist-post-tasks (learn.microsoft.com/graph/api/...). A higher privileged
permission covers its lower one where those tables say so (``ReadWrite`` covers ``Read``,
``ImportExport`` covers ``Export``); nothing covers ``MailboxItem.Read.All``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailferry.domain.errors import ConfigError


class Workload(StrEnum):
    MAIL = "mail"
    CALENDAR = "calendar"
    CONTACTS = "contacts"
    TASKS = "tasks"
    NOTES = "notes"


ALL = tuple(Workload)


class Route(StrEnum):
    """How a side is reached for the workloads other than IMAP mail."""

    MAILBOX = "mailbox"  # Graph's mailbox import/export API: opaque full-fidelity items
    RESOURCES = "resources"  # Graph's /calendars, /contactFolders, /todo: JSON, converted


def parse_workloads(text: str | None) -> frozenset[Workload] | None:
    """``--workloads mail,calendar``: the set, or None for "all that both ends support"."""
    if text is None or not text.strip() or text.strip() == "all":
        return None
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in Workload.__members__.values()]
    if unknown:
        known = ", ".join(ALL)
        raise ConfigError(f"--workloads: unknown {', '.join(unknown)} (known: {known}, or all)")
    return frozenset(Workload(name) for name in names)


# role -> the roles it implies (a higher privileged permission covers the lower one). Listing a
# mailbox folder's items (mailboxfolder-list-items, mailboxitem-delta) takes MailboxItem.Read.All
# and names no higher privileged permission: Export/ImportExport do not cover it.
_IMPLIES = {
    "MailboxItem.ImportExport.All": ("MailboxItem.Export.All",),
    "MailboxFolder.ReadWrite.All": ("MailboxFolder.Read.All",),
    "User.ReadWrite.All": ("User.Read.All",),
    "Calendars.ReadWrite": ("Calendars.Read",),
    "Contacts.ReadWrite": ("Contacts.Read",),
    "Tasks.ReadWrite.All": ("Tasks.Read.All",),
}


def effective(roles: frozenset[str] | set[str]) -> frozenset[str]:
    """The roles a token carries, with those they imply."""
    found = set(roles)
    for role in roles:
        found.update(_IMPLIES.get(role, ()))
    return frozenset(found)


@dataclass(frozen=True)
class Need:
    """The roles one workload needs on one side through one route (every one of them)."""

    workload: Workload
    route: Route
    source: tuple[str, ...]
    target: tuple[str, ...]


# User.Read.All: the mailbox id comes from /users/{id}/settings/exchange (usersettings-list-exchange);
# MailboxItem.Read.All on the target too: its items are listed to recognise copies by key
_MAILBOX_SOURCE = (
    "User.Read.All",
    "MailboxFolder.Read.All",
    "MailboxItem.Read.All",
    "MailboxItem.Export.All",
)
_MAILBOX_TARGET = (
    "User.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ImportExport.All",
)
_RESOURCES = {
    Workload.CALENDAR: (("Calendars.Read",), ("Calendars.ReadWrite",)),
    Workload.CONTACTS: (("Contacts.Read",), ("Contacts.ReadWrite",)),
    Workload.TASKS: (("Tasks.Read.All",), ("Tasks.ReadWrite.All",)),
}


def need(workload: Workload, route: Route) -> Need | None:
    """What ``workload`` needs through ``route``; None when that route cannot carry it (notes and
    mail have no resource route here: mail goes by IMAP or the mailbox API)."""
    if route is Route.MAILBOX:
        return Need(workload, route, _MAILBOX_SOURCE, _MAILBOX_TARGET)
    pair = _RESOURCES.get(workload)
    if pair is None:
        return None
    return Need(workload, route, pair[0], pair[1])


def missing(roles: frozenset[str], workload: Workload, route: Route, side: str) -> list[str]:
    """The roles ``side`` ("source" or "target") lacks for ``workload``: [] when it may go."""
    wanted = need(workload, route)
    if wanted is None:
        return []
    have = effective(roles)
    return [
        role for role in (wanted.source if side == "source" else wanted.target) if role not in have
    ]


def allowed(roles: frozenset[str], route: Route, side: str) -> tuple[Workload, ...]:
    """The workloads a token's roles let ``side`` move through ``route``."""
    return tuple(
        workload
        for workload in ALL
        if need(workload, route) is not None and not missing(roles, workload, route, side)
    )


class MailVia(StrEnum):
    GRAPH = "graph"
    IMAP = "imap"


@dataclass(frozen=True)
class SideKind:
    """What one side of ``mailferry sync`` offers: an IMAP URL, a DAV account (a DAV URL or
    ``--…-dav``), Microsoft 365 through Graph (``roles``: its app token's permissions)."""

    imap: bool
    dav: bool = False
    graph: bool = False
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RoutePlan:
    """Which workload goes which way: mail by IMAP or by the mailbox API; the other workloads
    through the mailbox API (both ends Microsoft 365) or the collection sync (CalDAV/CardDAV or
    Graph's resources on either side); ``skipped``: the workloads that do not move, and why."""

    mail: MailVia | None = None
    mailbox: frozenset[Workload] = frozenset()  # through export/import
    collections: frozenset[Workload] = frozenset()  # through the CalDAV/CardDAV sync
    skipped: tuple[tuple[Workload, str], ...] = ()

    def moves(self, workload: Workload) -> bool:
        return (
            workload in self.mailbox
            or workload in self.collections
            or (workload is Workload.MAIL and self.mail is not None)
        )


COLLECTION_WORKLOADS = (Workload.CALENDAR, Workload.CONTACTS, Workload.TASKS)


def collection_workload(addressbook: bool, components: tuple[str, ...]) -> Workload:
    """An address book holds contacts; a calendar that holds only VTODO is a task list (what
    To Do, Nextcloud Tasks and Apple Reminders make); any other calendar holds events."""
    if addressbook:
        return Workload.CONTACTS
    if components and set(components) <= {"VTODO"}:
        return Workload.TASKS
    return Workload.CALENDAR


def plan_routes(
    source: SideKind,
    target: SideKind,
    chosen: frozenset[Workload] | None,
    mail_via: MailVia | None = None,
) -> RoutePlan:
    """The routes of a pair; ``chosen`` None: every workload both ends and the permissions allow.
    A workload chosen by name that cannot move is a ConfigError naming why (every one of them)."""
    wanted = chosen if chosen is not None else frozenset(ALL)
    mailbox_ok = _mailbox_route(source, target)
    skipped: dict[Workload, str] = {}
    mail = _mail_route(source, target, mailbox_ok, mail_via, skipped)
    mailbox: set[Workload] = set()
    collections: set[Workload] = set()
    for workload in ALL:
        if workload is Workload.MAIL:
            if mail is MailVia.GRAPH:
                mailbox.add(workload)
            continue
        if mailbox_ok is None:
            mailbox.add(workload)
        elif workload in COLLECTION_WORKLOADS and not (
            why := _collection_gap(source, target, workload)
        ):
            collections.add(workload)
        else:
            skipped[workload] = mailbox_ok if workload is Workload.NOTES else why
    # a workload neither side has is not "skipped" unless asked for by name
    reported = (
        wanted
        if chosen is not None
        else {w for w in wanted if _offers(source, w) or _offers(target, w)}
    )
    plan = RoutePlan(
        mail if Workload.MAIL in wanted else None,
        frozenset(mailbox) & wanted,
        frozenset(collections) & wanted,
        tuple((w, skipped[w]) for w in ALL if w in skipped and w in reported),
    )
    if chosen is not None and plan.skipped:
        raise ConfigError([f"--workloads {w}: {why}" for w, why in plan.skipped])
    return plan


def _offers(side: SideKind, workload: Workload) -> bool:
    if workload is Workload.MAIL:
        return side.imap or side.graph
    if workload is Workload.NOTES:
        return side.graph
    return side.dav or side.graph


def _mailbox_route(source: SideKind, target: SideKind) -> str | None:
    """None when the mailbox import/export API can carry everything; else why not."""
    if not (source.graph and target.graph):
        return "needs Microsoft 365 through Graph on both ends"
    gaps = [
        f"the {side} app lacks {', '.join(absent)}"
        for side, kind in (("source", source), ("target", target))
        if (absent := missing(kind.roles, Workload.NOTES, Route.MAILBOX, side))
    ]
    return "; ".join(gaps) or None


def _mail_route(
    source: SideKind,
    target: SideKind,
    mailbox_gap: str | None,
    via: MailVia | None,
    skipped: dict[Workload, str],
) -> MailVia | None:
    if via is MailVia.GRAPH and mailbox_gap is not None:
        skipped[Workload.MAIL] = f"--mail-via graph {mailbox_gap}"
        return None
    if via is not MailVia.IMAP and mailbox_gap is None:
        return MailVia.GRAPH
    if source.imap and target.imap:
        return MailVia.IMAP
    skipped[Workload.MAIL] = "needs an IMAP URL on both ends (or Microsoft 365 on both)"
    return None


def _collection_gap(source: SideKind, target: SideKind, workload: Workload) -> str:
    """Why ``workload`` cannot go through the collection sync ("" when it can)."""
    for side, kind in (("source", source), ("target", target)):
        if kind.dav:
            continue
        if not kind.graph:
            return f"the {side} has no calendars or contacts (give --{side}-dav or Microsoft 365)"
        if absent := missing(kind.roles, workload, Route.RESOURCES, side):
            return f"the {side} app lacks {', '.join(absent)}"
    return ""
