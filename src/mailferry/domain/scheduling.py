"""No invitation is ever sent because of a migration (RFC 6638, SCHEDULE-AGENT).

A server that schedules implicitly sends invitations, updates and cancellations when it stores an event
whose ORGANIZER or ATTENDEE properties change. ``SCHEDULE-AGENT=CLIENT`` on each of them tells it that the
client takes care of scheduling, so the server sends nothing.

The bytes are rewritten textually, content line by content line: only the ORGANIZER and ATTENDEE lines
that lack the parameter are unfolded, changed and refolded; every other byte stays as it was read
(re-serialising with a library would reorder properties and re-escape values).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

SCHEDULED = frozenset({b"ORGANIZER", b"ATTENDEE"})
PARAM = b"SCHEDULE-AGENT"
CLIENT = b"CLIENT"
_MAX_OCTETS = 75  # RFC 5545 3.1: at most 75 octets a line, the line break excluded
_PHYSICAL = re.compile(rb"[^\n]*\n|[^\n]+$")


@dataclass(frozen=True)
class Rewritten:
    raw: bytes
    changed: bool = False


@dataclass(frozen=True)
class ContentLine:
    """One logical line: its physical lines as read (line ends included) and its unfolded text."""

    physical: tuple[bytes, ...]

    @property
    def ending(self) -> bytes:
        last = self.physical[-1]
        if last.endswith(b"\r\n"):
            return b"\r\n"
        return b"\n" if last.endswith(b"\n") else b""

    @property
    def unfolded(self) -> bytes:
        parts = [line.rstrip(b"\r\n") for line in self.physical]
        return parts[0] + b"".join(part[1:] for part in parts[1:])


def content_lines(raw: bytes) -> Iterator[ContentLine]:
    """Split ``raw`` into logical lines; joined, their physical lines give back ``raw`` exactly."""
    current: list[bytes] = []
    for match in _PHYSICAL.finditer(raw):
        line = match.group()
        if current and line[:1] in {b" ", b"\t"}:
            current.append(line)
            continue
        if current:
            yield ContentLine(tuple(current))
        current = [line]
    if current:
        yield ContentLine(tuple(current))


@dataclass(frozen=True)
class Parameter:
    name: bytes  # upper-cased
    text: bytes  # ";NAME=value,..." exactly as read


@dataclass(frozen=True)
class Property:
    name: bytes  # as read
    params: tuple[Parameter, ...]
    value: bytes  # after the ':'

    def serialise(self) -> bytes:
        return self.name + b"".join(p.text for p in self.params) + b":" + self.value


def parse_property(line: bytes) -> Property | None:
    """Name, parameters (quoted values may hold ';', ':' and ','), value; None when malformed."""
    end = 0
    while end < len(line) and line[end : end + 1] not in {b";", b":"}:
        end += 1
    name, pos, params = line[:end], end, []
    while pos < len(line) and line[pos : pos + 1] == b";":
        start, pos, quoted = pos, pos + 1, False
        while pos < len(line):
            char = line[pos : pos + 1]
            if char == b'"':
                quoted = not quoted
            elif not quoted and char in {b";", b":"}:
                break
            pos += 1
        text = line[start:pos]
        params.append(Parameter(text[1:].split(b"=", 1)[0].strip().upper(), text))
    if pos >= len(line) or not name:
        return None
    return Property(name, tuple(params), line[pos + 1 :])


def fold(line: bytes, ending: bytes) -> bytes:
    """``line`` folded at 75 octets, never inside a UTF-8 sequence, each piece ended by ``ending``."""
    ending = ending or b"\r\n"
    pieces: list[bytes] = []
    limit = _MAX_OCTETS
    while len(line) > limit:
        cut = limit
        while cut > 1 and (line[cut] & 0xC0) == 0x80:  # a continuation byte: step back to its start
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
        limit = _MAX_OCTETS - 1  # continuation lines start with one space
    pieces.append(line)
    return (ending + b" ").join(pieces) + ending


def _rewrite(raw: bytes, change: Callable[[Property], Property | None]) -> Rewritten:
    out: list[bytes] = []
    changed = False
    for content in content_lines(raw):
        prop = parse_property(content.unfolded)
        new = None
        if prop is not None and prop.name.upper() in SCHEDULED:
            new = change(prop)
        if new is None:
            out.extend(content.physical)
            continue
        changed = True
        folded = fold(new.serialise(), content.ending)
        out.append(folded if content.ending else folded.rstrip(b"\r\n"))
    return Rewritten(b"".join(out), changed=True) if changed else Rewritten(raw)


def _agent(prop: Property) -> Parameter | None:
    return next((p for p in prop.params if p.name == PARAM), None)


def _to_client(prop: Property) -> Property | None:
    agent = _agent(prop)
    wanted = Parameter(PARAM, b";" + PARAM + b"=" + CLIENT)
    if agent is None:
        return Property(prop.name, (*prop.params, wanted), prop.value)
    value = agent.text.split(b"=", 1)[-1].strip(b'"').upper()
    if value in {CLIENT, b"NONE"}:  # NONE: nobody schedules, which sends nothing either
        return None
    params = tuple(wanted if p is agent else p for p in prop.params)
    return Property(prop.name, params, prop.value)


def _without_client(prop: Property) -> Property | None:
    agent = _agent(prop)
    if agent is None or agent.text.split(b"=", 1)[-1].strip(b'"').upper() != CLIENT:
        return None
    return Property(prop.name, tuple(p for p in prop.params if p is not agent), prop.value)


def schedule_by_client(raw: bytes) -> Rewritten:
    """``raw`` with SCHEDULE-AGENT=CLIENT on every ORGANIZER and ATTENDEE (SERVER becomes CLIENT)."""
    return _rewrite(raw, _to_client)


def unschedule_by_client(raw: bytes) -> Rewritten:
    """The inverse, for comparison: every SCHEDULE-AGENT=CLIENT parameter taken off again."""
    return _rewrite(raw, _without_client)
