"""imapclient's response parser, fast for the answers a migration reads by the million.

``imapclient.response_parser.gen_parsed_response`` reads a response a byte at a time through
nested generators: on a folder of small messages it was over a quarter of mailferry's CPU time (the
listing of every window, and every body FETCH). ``parse_atoms`` gives the same values (ints, bytes,
None for NIL, tuples for lists, literals) from one regular expression over each line, and hands any
line it is not sure of to imapclient whole: anything but the plain shapes below (a control
character, ``%``, a stray ``]``, ``{``, a quote inside a word, trailing space, an unbalanced list)
makes it give up, never guess. The two are compared on generated input in
``tests/unit/test_atoms.py``.

INTERNALDATE, read once per message, is parsed the same way: the fixed RFC 3501 form by one
expression, anything else by imapclient.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from typing import Any

from imapclient.datetime_util import parse_to_datetime
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import gen_parsed_response

# One token, after the spaces before it. Groups: 1 a paren, 2 a quoted string, 3 a word
# (with any [section] in it, spaces and parens included, as imapclient reads it), 4 a literal's
# length, 5 anything else (the line goes to imapclient).
_TOKEN = re.compile(
    rb' *(?:([()])|("(?:[^"\\]|\\.)*")|((?:[^\x00-\x20\x7f()%"\[\]{}]|\[[^\]]*\])+)(?!["\[{])'
    rb"|\{(\d+)\}$|(.))",
    re.DOTALL,
)
_ESCAPED = re.compile(rb'\\([\\"])')


class _UnsureError(Exception):
    """This input is not one of the shapes handled here: imapclient parses it."""


def parse_atoms(data: Sequence[Any]) -> list[Any]:
    """imaplib's response data (lines and ``(line, literal)`` pairs) -> imapclient's atoms."""
    try:
        return _parse(data)
    except _UnsureError:
        return list(gen_parsed_response(list(data)))


def _parse(data: Sequence[Any]) -> list[Any]:
    top: list[Any] = []
    stack: list[list[Any]] = [top]
    for record in data:
        line, literal = record if isinstance(record, tuple) else (record, None)
        if not isinstance(line, bytes):
            raise _UnsureError
        _tokens(line, literal, stack)
    if len(stack) != 1:
        raise _UnsureError  # a list left open: imapclient says how
    return top


def _tokens(line: bytes, literal: bytes | None, stack: list[list[Any]]) -> None:
    """Add one record's tokens to the open lists (``stack[-1]`` the innermost)."""
    took_literal = literal is None
    for paren, quoted, word, length, other in _TOKEN.findall(line):
        if other or (not paren and not quoted and not word and not length):
            raise _UnsureError
        if paren == b"(":
            stack.append([])
        elif paren:
            if len(stack) == 1:
                raise _UnsureError
            done = tuple(stack.pop())
            stack[-1].append(done)
        elif length:
            if took_literal or len(literal or b"") != int(length):
                raise _UnsureError
            took_literal = True
            stack[-1].append(literal)
        elif word:
            stack[-1].append(_word(word))
        else:
            inside = quoted[1:-1]
            stack[-1].append(_ESCAPED.sub(rb"\1", inside) if b"\\" in inside else inside)
    if not took_literal:
        raise _UnsureError


def _word(word: bytes) -> Any:
    if word == b"NIL":
        return None
    if word.isdigit() and (word[:1] != b"0" or len(word) == 1):
        return int(word)
    return word


_DATE = re.compile(
    rb"([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", re.ASCII
)
_MONTHS = {
    m: n for n, m in enumerate(b"jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)
}


def internaldate(raw: bytes) -> dt.datetime:
    """An INTERNALDATE (``"dd-Mon-yyyy hh:mm:ss +zzzz"``, quotes taken off) as an aware time."""
    found = _DATE.fullmatch(raw.strip())
    month = _MONTHS.get(found.group(2).lower()) if found else None
    if found is None or month is None:
        return _slow_internaldate(raw)
    day, _, year, hour, minute, second, sign, hh, mm = found.groups()
    minutes = int(hh) * 60 + int(mm)
    zone = _zone(dt.timedelta(minutes=-minutes if sign == b"-" else minutes))
    try:
        return dt.datetime(
            int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError:  # 31-Feb, 25:00: imapclient's reading, or its error
        return _slow_internaldate(raw)


def _slow_internaldate(raw: bytes) -> dt.datetime:
    value: dt.datetime = parse_to_datetime(raw, normalise=False)
    offset = value.utcoffset()
    return value.replace(tzinfo=_zone(offset if offset is not None else dt.timedelta()))


@functools.lru_cache(maxsize=256)
def _zone(offset: dt.timedelta) -> dt.timezone:
    """imapclient gives every date its own FixedOffset (~380 bytes with its dict): one shared
    ``dt.timezone`` per offset instead, the same instant and offset."""
    return dt.UTC if not offset else dt.timezone(offset)


__all__ = ["ProtocolError", "internaldate", "parse_atoms"]
