"""WebDAV XML: the request bodies mailferry sends and the ``207 Multi-Status`` answers it reads.

Parsed with the standard library's ElementTree (no lxml). Names are Clark names
(``{DAV:}getetag``). A response's properties are kept only from its ``200`` propstat: a ``404``
propstat means "no such property", which the callers treat as absent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
APPLE_ICAL = "http://apple.com/ns/ical/"
CALSERVER = "http://calendarserver.org/ns/"
PREFIXES = {DAV: "D", CALDAV: "C", CARDDAV: "A", APPLE_ICAL: "I", CALSERVER: "CS"}


def clark(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def d(name: str) -> str:
    return clark(DAV, name)


def c(name: str) -> str:
    return clark(CALDAV, name)


def a(name: str) -> str:
    return clark(CARDDAV, name)


@dataclass(frozen=True)
class DavResponse:
    """One ``<response>``: its href (a path), its status if it has one, its found properties."""

    href: str
    status: int | None
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        element = self.props.get(name)
        return None if element is None or element.text is None else element.text

    def hrefs(self, name: str) -> list[str]:
        element = self.props.get(name)
        if element is None:
            return []
        return [href_path(h.text or "") for h in element.iter(d("href"))]

    def children(self, name: str) -> list[ET.Element]:
        element = self.props.get(name)
        return [] if element is None else list(element)


def href_path(href: str) -> str:
    """Servers answer with paths or full URLs, quoted or not: keep the unquoted path."""
    return unquote(urlsplit(href.strip()).path)


def status_code(line: str | None) -> int | None:
    """``HTTP/1.1 404 Not Found`` -> 404."""
    if not line:
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def parse_multistatus(body: bytes) -> list[DavResponse]:
    root = ET.fromstring(body)  # noqa: S314 - ElementTree expands no external entities
    return [_response(r) for r in root.iter(d("response"))]


def sync_token(body: bytes) -> str | None:
    """The top-level ``<sync-token>`` of a sync-collection answer."""
    token = ET.fromstring(body).find(d("sync-token"))  # noqa: S314
    return None if token is None or not token.text else token.text.strip()


def refused_properties(body: bytes) -> tuple[str, ...]:
    """The properties a MKCALENDAR / extended MKCOL answer says were not set (RFC 5689 s3: a
    server may create the collection and still refuse some of them, with a 201)."""
    if not body.strip():
        return ()
    refused: list[str] = []
    for propstat in ET.fromstring(body).iter(d("propstat")):  # noqa: S314
        if status_code(propstat.findtext(d("status"))) != 200:
            refused.extend(child.tag for prop in propstat.iter(d("prop")) for child in prop)
    return tuple(refused)


def error_conditions(body: bytes) -> frozenset[str]:
    """The preconditions a ``<D:error>`` answer names (RFC 4918 s16), e.g. ``{DAV:}quota-not-
    exceeded``; none when the body is empty, not XML or something else."""
    try:
        root = ET.fromstring(body)  # noqa: S314
    except SyntaxError:  # ET.ParseError: plain text, HTML, nothing
        return frozenset()
    return frozenset(child.tag for child in root) if root.tag == d("error") else frozenset()


def _response(element: ET.Element) -> DavResponse:
    href = href_path(element.findtext(d("href"), ""))
    props: dict[str, ET.Element] = {}
    for propstat in element.iter(d("propstat")):
        if status_code(propstat.findtext(d("status"))) == 200:
            for prop in propstat.iter(d("prop")):
                props.update((child.tag, child) for child in prop)
    return DavResponse(href, status_code(element.findtext(d("status"))), props)


def _element(name: str, parent: ET.Element | None = None) -> ET.Element:
    namespace, _, local = name[1:].partition("}")
    tag = f"{PREFIXES[namespace]}:{local}"
    return ET.Element(tag) if parent is None else ET.SubElement(parent, tag)


def _serialize(root: ET.Element) -> bytes:
    for namespace, prefix in PREFIXES.items():
        root.set(f"xmlns:{prefix}", namespace)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def propfind_body(names: list[str]) -> bytes:
    root = _element(d("propfind"))
    prop = _element(d("prop"), root)
    for name in names:
        _element(name, prop)
    return _serialize(root)


def sync_collection_body(token: str | None, names: list[str]) -> bytes:
    root = _element(d("sync-collection"))
    _element(d("sync-token"), root).text = token or ""
    _element(d("sync-level"), root).text = "1"
    prop = _element(d("prop"), root)
    for name in names:
        _element(name, prop)
    return _serialize(root)


def multiget_body(report: str, data: str, hrefs: list[str]) -> bytes:
    """``calendar-multiget`` / ``addressbook-multiget`` for ``hrefs``, asking ETag and data."""
    root = _element(report)
    prop = _element(d("prop"), root)
    _element(d("getetag"), prop)
    _element(data, prop)
    for href in hrefs:
        _element(d("href"), root).text = href
    return _serialize(root)


def set_body(root_name: str, values: dict[str, str | list[str] | None]) -> bytes:
    """A MKCALENDAR / extended MKCOL body that sets ``values`` (Clark name -> text).

    A list value becomes child elements: ``resourcetype`` (names), or the components of
    ``supported-calendar-component-set`` (``<C:comp name="VEVENT"/>``).
    """
    root = _element(root_name)
    prop = _element(d("prop"), _element(d("set"), root))
    for name, value in values.items():
        if value is None:
            continue
        element = _element(name, prop)
        if isinstance(value, str):
            element.text = value
        elif name == c("supported-calendar-component-set"):
            for component in value:
                _element(c("comp"), element).set("name", component)
        else:
            for child in value:
                _element(child, element)
    return _serialize(root)
