"""Finding an account's homes (RFC 6764, RFC 4791 s6.2.1, RFC 6352 s7.1.1).

From the account URL: its own path first when it names one, then ``/.well-known/caldav`` and
``/.well-known/carddav`` (redirects followed by hand: httpx turns a redirected PROPFIND into a
GET), then ``/``; the first that answers ``current-user-principal`` names the principal, whose
``calendar-home-set`` and ``addressbook-home-set`` are the homes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mailferry.adapters.dav.multistatus import a, c, d, href_path, propfind_body
from mailferry.adapters.dav.session import XML, DavSession, read_multistatus
from mailferry.domain.davmodel import Homes
from mailferry.domain.errors import FolderError

WELL_KNOWN = ("/.well-known/caldav", "/.well-known/carddav")
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}


def discover(session: DavSession) -> Homes:
    principal = find_principal(session)
    names = [c("calendar-home-set"), a("addressbook-home-set")]
    responses = session.multistatus("PROPFIND", principal, propfind_body(names), "0")
    calendar_home = addressbook_home = None
    for response in responses:
        calendar_home = calendar_home or next(iter(response.hrefs(names[0])), None)
        addressbook_home = addressbook_home or next(iter(response.hrefs(names[1])), None)
    if calendar_home is None and addressbook_home is None:
        raise FolderError(principal, "the principal names no calendar or address book home")
    return Homes(principal, calendar_home, addressbook_home)


def find_principal(session: DavSession) -> str:
    path = session.url.path
    candidates = [*([path] if path != "/" else []), *WELL_KNOWN, "/"]
    for candidate in candidates:
        principal = _principal_at(session, candidate)
        if principal is not None:
            return principal
    raise FolderError(session.url.base, "no CalDAV/CardDAV service found at this URL")


def _principal_at(session: DavSession, path: str) -> str | None:
    body = propfind_body([d("current-user-principal")])
    for _ in range(MAX_REDIRECTS + 1):
        response = session.request(
            "PROPFIND", path, body=body, headers={"Depth": "0", "Content-Type": XML}
        )
        location = response.headers.get("Location")
        if response.status_code not in REDIRECTS or not location:
            break
        target = _same_origin_path(session, location)
        if target is None:
            return None
        path = target
    try:
        responses = read_multistatus(response, path)
    except FolderError:
        return None
    for found in responses:
        principal: str | None = next(iter(found.hrefs(d("current-user-principal"))), None)
        if principal:
            return principal
    return None


def _same_origin_path(session: DavSession, location: str) -> str | None:
    """A redirect's path, or None when it leaves the account's host (never followed)."""
    parts = urlsplit(location)
    if parts.netloc and f"{parts.scheme}://{parts.netloc}" != session.url.base:
        return None
    return href_path(location)
