"""Content lines, the text form shared by iCalendar (RFC 5545 3.1) and vCard (RFC 6350 3.2).

A logical line may be folded over several physical lines (a line break followed by one space or tab).
These functions split bytes into logical lines without losing a byte, parse one line into name,
parameters and value (parameter values may be quoted and then hold ';', ':' and ','), and fold a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_MAX_OCTETS = 75  # RFC 5545 3.1: at most 75 octets a line, the line break excluded
_PHYSICAL = re.compile(rb"[^\n]*\n|[^\n]+$")


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
    start, limit = 0, _MAX_OCTETS
    while len(line) - start > limit:  # by offset: a photo's megabyte line is not copied per piece
        cut = start + limit
        while cut > start + 1 and (line[cut] & 0xC0) == 0x80:  # a continuation byte: to its start
            cut -= 1
        pieces.append(line[start:cut])
        start = cut
        limit = _MAX_OCTETS - 1  # continuation lines start with one space
    pieces.append(line[start:])
    return (ending + b" ").join(pieces) + ending
