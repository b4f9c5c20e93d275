"""A collection's properties: which ones are asked for, how an answer becomes a CollectionInfo,
and the MKCALENDAR / extended MKCOL bodies that create one with them."""

from __future__ import annotations

from mailferry.adapters.dav.multistatus import (
    APPLE_ICAL,
    CALSERVER,
    DavResponse,
    a,
    c,
    clark,
    d,
    set_body,
)
from mailferry.domain.davmodel import CollectionInfo, CollectionKind, NewCollection

COLOR = clark(APPLE_ICAL, "calendar-color")
CTAG = clark(CALSERVER, "getctag")
COMPONENTS = c("supported-calendar-component-set")
KINDS = {
    c("calendar"): CollectionKind.CALENDAR,
    a("addressbook"): CollectionKind.ADDRESSBOOK,
    c("schedule-inbox"): CollectionKind.SCHEDULE_INBOX,
    c("schedule-outbox"): CollectionKind.SCHEDULE_OUTBOX,
}


def collection_props() -> list[str]:
    return [
        d("resourcetype"),
        d("displayname"),
        c("calendar-description"),
        a("addressbook-description"),
        COLOR,
        c("calendar-timezone"),
        COMPONENTS,
        d("sync-token"),
        CTAG,
        c("max-resource-size"),
        a("max-resource-size"),
    ]


def collection_info(response: DavResponse) -> CollectionInfo | None:
    """The collection this response describes, or None when it is not a collection."""
    types = tuple(e.tag for e in response.children(d("resourcetype")))
    if d("collection") not in types:
        return None
    kind = next((KINDS[t] for t in types if t in KINDS), CollectionKind.OTHER)
    description = response.text(c("calendar-description")) or response.text(
        a("addressbook-description")
    )
    components = tuple(
        e.get("name", "") for e in response.children(COMPONENTS) if e.tag == c("comp")
    )
    return CollectionInfo(
        href=response.href if response.href.endswith("/") else response.href + "/",
        kind=kind,
        resourcetype=types,
        displayname=response.text(d("displayname")),
        description=description,
        color=response.text(COLOR),
        timezone=response.text(c("calendar-timezone")),
        components=components,
        sync_token=response.text(d("sync-token")),
        ctag=response.text(CTAG),
        max_resource_size=_size(
            response.text(c("max-resource-size")) or response.text(a("max-resource-size"))
        ),
    )


def _size(text: str | None) -> int | None:
    return int(text.strip()) if text and text.strip().isdigit() else None


def mkcol_request(new: NewCollection) -> tuple[str, bytes]:
    """(method, body) creating ``new``: MKCALENDAR for a calendar, extended MKCOL otherwise."""
    if new.kind is CollectionKind.CALENDAR:
        values: dict[str, str | list[str] | None] = {
            d("displayname"): new.displayname,
            c("calendar-description"): new.description,
            COLOR: new.color,
            c("calendar-timezone"): new.timezone,
            COMPONENTS: list(new.components) or None,
        }
        return "MKCALENDAR", set_body(c("mkcalendar"), values)
    if new.kind is CollectionKind.ADDRESSBOOK:
        values = {
            d("resourcetype"): [d("collection"), a("addressbook")],
            d("displayname"): new.displayname,
            a("addressbook-description"): new.description,
        }
        return "MKCOL", set_body(d("mkcol"), values)
    raise ValueError(f"cannot create a collection of kind {new.kind}")
