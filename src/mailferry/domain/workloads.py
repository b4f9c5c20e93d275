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
