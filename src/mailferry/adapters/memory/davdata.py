"""What the in-memory DAV server (``memory/dav.py``) reads in the bytes it is given.

A real server parses what it stores: it refuses what is not iCalendar or vCard (Radicale: 400),
keys the no-uid-conflict check on the UID, checks the component against the collection's
supported-calendar-component-set, and may re-serialise (Radicale and Xandikos reorder an
event's properties, docs/dav-servers.md). The fake does the same, textually, content line by
content line (``domain/contentlines``), so that no library decides for it what is valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailferry.domain.contentlines import ContentLine, Parameter, content_lines, parse_property

TIMEZONE = "VTIMEZONE"
ALARM = "VALARM"
SCHEDULE_AGENT = b"SCHEDULE-AGENT"
NOT_SCHEDULED = {b"CLIENT", b"NONE"}  # RFC 6638 s7.1: the server sends nothing for these


@dataclass(frozen=True)
class Parsed:
    """An item as a server sees it: its outer object, its main component and its UID."""

    root: str  # "VCALENDAR" or "VCARD"
    component: str  # VEVENT, VTODO, ... (the first non-VTIMEZONE child) or "VCARD"
    uid: str | None


class InvalidDataError(ValueError):
    """Not one balanced iCalendar object or vCard (a real server answers 400)."""


def parse(raw: bytes) -> Parsed:
    """The root, main component and UID of ``raw``; ``InvalidDataError`` when not one object."""
    reader = _Reader()
    for line in content_lines(raw):
        reader.read(*_name_value(line))
    if reader.root is None or reader.stack:
        raise InvalidDataError("unbalanced BEGIN/END" if reader.stack else "empty")
    if reader.root == "VCARD":
        return Parsed(reader.root, "VCARD", reader.uid)
    if reader.component is None:
        raise InvalidDataError(f"no component in the {reader.root}")
    return Parsed(reader.root, reader.component, reader.uid)


@dataclass
class _Reader:
    stack: list[str] = field(default_factory=list)
    root: str | None = None
    component: str | None = None
    uid: str | None = None

    def read(self, name: str, value: str) -> None:
        if name == "BEGIN":
            self._begin(value)
        elif name == "END":
            if not self.stack or self.stack.pop() != value:
                raise InvalidDataError(f"END:{value} closes nothing")
        elif name == "UID" and self.uid is None and self._in_main():
            self.uid = value or None
        elif name and not self.stack:
            raise InvalidDataError("a property outside the object")

    def _begin(self, value: str) -> None:
        if self.root is None:
            self.root = value
        elif not self.stack:
            raise InvalidDataError("more than one object")
        elif len(self.stack) == 1 and self.component is None and value != TIMEZONE:
            self.component = value
        self.stack.append(value)

    def _in_main(self) -> bool:
        """Inside the vCard, or the main component of the calendar (not an alarm in it)."""
        if self.root == "VCARD":
            return self.stack == ["VCARD"]
        return len(self.stack) == 2 and self.stack[1] == self.component  # VCALENDAR > it


def _name_value(line: ContentLine) -> tuple[str, str]:
    text = line.unfolded.strip()
    if not text:
        return "", ""
    prop = parse_property(text)
    if prop is None:
        raise InvalidDataError(f"not a content line: {text[:40]!r}")
    return prop.name.decode("ascii", "replace").upper(), prop.value.decode("utf-8", "replace")


def invited(raw: bytes) -> tuple[str, ...]:
    """The attendees a server that schedules implicitly would invite (RFC 6638 s3.2).

    Every ATTENDEE of a scheduling component without SCHEDULE-AGENT=CLIENT (or NONE); an
    ATTENDEE of a VALARM is where an e-mail alarm goes, not an invitation.
    """
    stack: list[str] = []
    found: list[str] = []
    for line in content_lines(raw):
        prop = parse_property(line.unfolded.strip())
        if prop is None:
            continue
        name = prop.name.upper()
        if name == b"BEGIN":
            stack.append(prop.value.decode("utf-8", "replace").upper())
        elif name == b"END" and stack:
            stack.pop()
        elif name == b"ATTENDEE" and ALARM not in stack and _scheduled(prop.params):
            found.append(prop.value.decode("utf-8", "replace"))
    return tuple(found)


def _scheduled(params: tuple[Parameter, ...]) -> bool:
    for param in params:
        if param.name == SCHEDULE_AGENT:
            return param.text.split(b"=", 1)[-1].strip(b'"').upper() not in NOT_SCHEDULED
    return True


def reordered(raw: bytes) -> bytes:
    """``raw`` with each component's properties sorted by name, as a re-serialising server
    stores it: every content line kept (folding included), BEGIN/END and sub-components in place.
    """
    lines = list(content_lines(raw))
    out: list[bytes] = []
    index = 0
    while index < len(lines):
        if _name_value(lines[index])[0] == "BEGIN":
            component, index = _component(lines, index)
            out.extend(component)
        else:  # blank lines around the object stay where they were
            out.extend(lines[index].physical)
            index += 1
    return b"".join(out)


def _component(lines: list[ContentLine], start: int) -> tuple[list[bytes], int]:
    """The lines of the component that begins at ``start`` (reordered) and where it ends."""
    head = lines[start]
    properties: list[tuple[str, bytes]] = []
    children: list[bytes] = []
    index = start + 1
    while index < len(lines):
        name, _ = _name_value(lines[index])
        if name == "END":
            body = [p for _, p in sorted(properties, key=lambda pair: pair[0])]
            ordered = [*head.physical, *body, *children]
            return [*ordered, *lines[index].physical], index + 1
        if name == "BEGIN":
            child, index = _component(lines, index)
            children.extend(child)
            continue
        properties.append((name, b"".join(lines[index].physical)))
        index += 1
    raise InvalidDataError("unbalanced BEGIN/END")
