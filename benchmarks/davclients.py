"""What the DAV benchmark does to the servers itself: item counts by PROPFIND, seeding by PUT
or straight into Radicale's storage, and the vdirsyncer configuration of one one-way copy.

Written against the protocol with httpx and ElementTree, not with mailferry's DAV adapter: the
count that judges a tool must not share that tool's code.
"""

from __future__ import annotations

import concurrent.futures
import json
import ssl
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import davcorpus
import httpx

DAV, CALDAV, CARDDAV = "DAV:", "urn:ietf:params:xml:ns:caldav", "urn:ietf:params:xml:ns:carddav"
HOMES = f"""<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="{CALDAV}" xmlns:a="{CARDDAV}">
<d:prop><d:current-user-principal/><c:calendar-home-set/><a:addressbook-home-set/></d:prop>
</d:propfind>"""
LISTING = """<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getetag/>
</d:prop></d:propfind>"""


@dataclass(frozen=True)
class Login:
    base: str  # scheme://127.0.0.1:port
    user: str
    password: str
    ca_file: Path | None = None

    def client(self, **options: object) -> httpx.Client:
        verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True
        return httpx.Client(
            base_url=self.base,
            auth=(self.user, self.password),
            verify=verify,
            timeout=600,
            **options,  # type: ignore[arg-type]
        )


def propfind(client: httpx.Client, path: str, depth: str, body: str) -> ET.Element:
    response = client.request(
        "PROPFIND", path, content=body, headers={"Depth": depth, "Content-Type": "application/xml"}
    )
    response.raise_for_status()
    return ET.fromstring(response.content)  # noqa: S314 - our own local test servers


def _href(response: ET.Element, prop: str) -> str | None:
    node = response.find(f".//{prop}/{{{DAV}}}href")
    return node.text if node is not None and node.text else None


def homes(client: httpx.Client, user: str) -> set[str]:
    root = propfind(client, "/", "0", HOMES)
    principal = _href(root, f"{{{DAV}}}current-user-principal") or f"/{user}/"
    found = propfind(client, principal, "0", HOMES)
    paths = {
        _href(found, f"{{{CALDAV}}}calendar-home-set"),
        _href(found, f"{{{CARDDAV}}}addressbook-home-set"),
    }
    return {p for p in paths if p}


def collections(client: httpx.Client, user: str) -> dict[str, str]:
    """The user's calendars and address books: href -> "calendar" | "addressbook"."""
    found: dict[str, str] = {}
    for home in homes(client, user):
        for response in propfind(client, home, "1", LISTING).iter(f"{{{DAV}}}response"):
            href = response.findtext(f"{{{DAV}}}href") or ""
            kinds = response.find(f".//{{{DAV}}}resourcetype")
            if kinds is None:
                continue
            if kinds.find(f"{{{CALDAV}}}calendar") is not None:
                found[href] = "calendar"
            elif kinds.find(f"{{{CARDDAV}}}addressbook") is not None:
                found[href] = "addressbook"
    return found


def count_items(login: Login) -> dict[str, int]:
    """Resources (not collections) in each of the user's calendars and address books."""
    counts: dict[str, int] = {}
    with login.client() as client:
        for href in sorted(collections(client, login.user)):
            listing = propfind(client, href, "1", LISTING)
            counts[href] = sum(
                1
                for response in listing.iter(f"{{{DAV}}}response")
                if response.find(f".//{{{DAV}}}resourcetype/{{{DAV}}}collection") is None
            )
    return counts


def make_collection(client: httpx.Client, home: str, collection: davcorpus.Collection) -> str:
    path = f"{home.rstrip('/')}/{collection.name}/"
    if collection.kind == "calendar":
        body = f"""<?xml version="1.0"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:set><d:prop>
<c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>
</d:prop></d:set></c:mkcalendar>"""
        response = client.request("MKCALENDAR", path, content=body)
    else:
        body = f"""<?xml version="1.0"?><d:mkcol xmlns:d="DAV:" xmlns:a="{CARDDAV}"><d:set><d:prop>
<d:resourcetype><d:collection/><a:addressbook/></d:resourcetype></d:prop></d:set></d:mkcol>"""
        response = client.request("MKCOL", path, content=body)
    response.raise_for_status()
    return path


def seed_by_put(login: Login, corpus: davcorpus.DavCorpus, threads: int = 4) -> tuple[int, int]:
    """Create the corpus's collections and PUT every item, ``threads`` requests in flight."""
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    with login.client(limits=limits) as client:
        found = homes(client, login.user)
        calendar_home = next((h for h in sorted(found) if "calendar" in h), min(found))
        book_home = next((h for h in sorted(found) if "contact" in h), min(found))
        paths = {
            c.name: make_collection(client, calendar_home if c.kind == "calendar" else book_home, c)
            for c in corpus.collections()
        }
        done = [0, 0]
        lock = threading.Lock()

        def put(resource: davcorpus.Resource) -> None:
            kind = "text/calendar" if resource.name.endswith(".ics") else "text/vcard"
            response = client.put(
                paths[resource.collection] + resource.name,
                content=resource.body,
                headers={"Content-Type": f"{kind}; charset=utf-8", "If-None-Match": "*"},
            )
            response.raise_for_status()
            with lock:
                done[0], done[1] = done[0] + 1, done[1] + len(resource.body)

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            # map() would queue the whole corpus up front; a bounded window keeps memory flat
            pending: set[concurrent.futures.Future[None]] = set()
            for resource in corpus.resources():
                if len(pending) >= threads * 4:
                    finished, pending = concurrent.futures.wait(
                        pending, return_when="FIRST_COMPLETED"
                    )
                    for future in finished:
                        future.result()
                pending.add(pool.submit(put, resource))
            for future in concurrent.futures.as_completed(pending):
                future.result()
    return done[0], done[1]


def vdirsyncer_config(folder: Path, source: Login, target: Login) -> Path:
    """One pair per protocol, every source collection copied one way ("from a") into the target,
    missing target collections created without asking (``implicit = "create"``), the source
    storage read-only. Passwords come from the environment (VDIRSYNCER_A/B_PASSWORD), not the file.
    """
    lines = ["[general]", f'status_path = "{folder / "status"}"', ""]
    for pair, kind in (("cal", "caldav"), ("card", "carddav")):
        lines += [
            f"[pair {pair}]",
            f'a = "{pair}_a"',
            f'b = "{pair}_b"',
            'collections = ["from a"]',
            'conflict_resolution = "a wins"',
            'implicit = "create"',
            "",
        ]
        for side, login in (("a", source), ("b", target)):
            lines += [
                f"[storage {pair}_{side}]",
                f'type = "{kind}"',
                f'url = "{login.base}/"',
                f'username = "{login.user}"',
                f'password.fetch = ["command", "printenv", "VDIRSYNCER_{side.upper()}_PASSWORD"]',
            ]
            if login.ca_file:
                lines.append(f'verify = "{login.ca_file}"')
            if side == "a":
                lines.append("read_only = true")
            lines.append("")
    path = folder / "config"
    path.write_text("\n".join(lines))
    return path


# -- seeding Radicale's storage ----------------------------------------------------------------------------------


def seed_radicale(
    collections_root: Path, user: str, corpus: davcorpus.DavCorpus
) -> tuple[int, int]:
    """Write the corpus straight into Radicale's filesystem storage: (items, bytes).

    Radicale keeps nothing about items in memory: every request lists the collection's folder
    and parses a file whose cache entry (keyed by the file's hash) is missing. So files written
    here while it runs are served like uploaded ones. The principal folder is made first: with
    it present, Radicale does not create its predefined collections at the first login.
    """
    home = collections_root / "collection-root" / user
    for collection in corpus.collections():
        folder = home / collection.name
        folder.mkdir(parents=True)
        props = (
            {
                "tag": "VCALENDAR",
                "D:displayname": f"Calendar {collection.name}",
                "C:supported-calendar-component-set": "VEVENT",
            }
            if collection.kind == "calendar"
            else {"tag": "VADDRESSBOOK", "D:displayname": f"Address book {collection.name}"}
        )
        (folder / ".Radicale.props").write_text(json.dumps(props))
    count = size = 0
    for resource in corpus.resources():
        (home / resource.collection / resource.name).write_bytes(resource.body)
        count, size = count + 1, size + len(resource.body)
    return count, size
