"""The fast response parser (adapters/imap/atoms.py) against imapclient's, on generated input."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from imapclient.exceptions import ProtocolError
from imapclient.response_parser import gen_parsed_response

from mailferry.adapters.imap import atoms
from mailferry.adapters.imap.atoms import parse_atoms
from mailferry.adapters.imap.wire import internaldate as internaldate_text

# Pieces of FETCH answers as servers write them, and pieces that are not.
PIECES = [
    b" ",
    b"(",
    b")",
    b"1",
    b"0",
    b"007",
    b"4294967295",
    b"NIL",
    b"nil",
    b"UID",
    b"FLAGS",
    b"\\Seen",
    b"$Junk",
    b"\\*",
    b"RFC822.SIZE",
    b"INTERNALDATE",
    b'"06-Dec-2026 06:55:11 +0000"',
    b'""',
    b'"a \\"quoted\\" \\\\ b\\x"',
    b"BODY[]",
    b"BODY[]<0>",
    b"BODY[HEADER.FIELDS (MESSAGE-ID)]",
    b'BODY[HEADER.FIELDS ("Message-ID")]',
    b"\xc3\xa9t\xc3\xa9",
    b"MODSEQ",
]
BAD = [b'"unterminated', b"BODY[", b"]", b"%", b"{", b"}", b"\t", b"\x00", b"\x7f", b'"', b"\\"]


@st.composite
def records(draw: st.DrawFn) -> list[Any]:
    """imaplib's data for a response: lines, and (line ending in a literal marker, literal)."""
    out: list[Any] = []
    for _ in range(draw(st.integers(1, 4))):
        pieces = st.sampled_from(PIECES) | st.sampled_from(PIECES) | st.sampled_from(BAD)
        if draw(st.booleans()):  # half of the lines are well formed
            pieces = st.sampled_from(PIECES)
        line = b"".join(draw(st.lists(pieces, max_size=14)))
        if draw(st.booleans()):
            literal = draw(st.binary(max_size=12))
            size = len(literal) + draw(st.sampled_from([0, 0, 0, 1, -1]))
            space = draw(st.sampled_from([b" ", b"", b"  "]))
            out.append((line + space + b"{%d}" % size, literal))
        else:
            out.append(line)
    return out


def imapclient(data: list[Any]) -> list[Any] | type[Exception]:
    try:
        return list(gen_parsed_response(list(data)))
    except (ProtocolError, ValueError, AssertionError, IndexError) as exc:
        return type(exc)


@settings(max_examples=1500)
@given(records())
@example([b'1 (UID 7 FLAGS (\\Seen) INTERNALDATE "06-Dec-2026 06:55:11 +0000" RFC822.SIZE 83)'])
@example([(b"2 (UID 8 BODY[HEADER.FIELDS (MESSAGE-ID)] {3}", b"abc"), b")"])
@example([b"NIL 0 00 01 10"])
def test_fast_path_agrees_with_imapclient_or_hands_over(data):
    """Where the fast path answers, imapclient answers the same; else imapclient parses it."""
    try:
        fast = atoms._parse(data)
    except atoms._UnsureError:
        return
    assert imapclient(data) == fast
    assert parse_atoms(data) == fast


@pytest.mark.parametrize(
    "data",
    [
        [
            (
                b'1 (UID 7 FLAGS (\\Seen $Junk) INTERNALDATE "06-Dec-2026 06:55:11 +0000" '
                b"RFC822.SIZE 83 BODY[HEADER.FIELDS (MESSAGE-ID)] {19}"
            )
        ],
        [b"12 (UID 40 FLAGS () MODSEQ (12345))"],
        [b"3 (UID 9 BODY[] {5}"],
        [b"4 (UID 10 BODY[]<0> {5}"],
    ],
)
def test_the_answers_servers_send_take_the_fast_path(data):
    """Dovecot's, Cyrus's and Courier's listing and body rows: no hand-over to imapclient."""
    if isinstance(data[0], bytes) and data[0].endswith(b"}"):
        size = int(data[0].rsplit(b"{", 1)[1][:-1])
        data = [(data[0], b"x" * size), b")"]
    fast = atoms._parse(data)
    assert fast == imapclient(data)
    assert isinstance(fast[0], int) and isinstance(fast[1], tuple)


def test_what_the_fast_path_refuses_imapclient_refuses_alike():
    for data in ([b"1 (UID 7"], [b'1 (UID 7 FLAGS (\\Seen "x)']):
        with pytest.raises(ProtocolError):
            parse_atoms(data)


@given(
    st.datetimes(
        min_value=dt.datetime(1970, 1, 1),  # noqa: DTZ001 - naive bounds, as Hypothesis wants
        max_value=dt.datetime(9999, 12, 31),  # noqa: DTZ001
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7, minutes=-30))])
        | st.builds(dt.timezone, st.timedeltas(-dt.timedelta(hours=23), dt.timedelta(hours=23))),
    ),
    st.sampled_from(["as is", "lower", "space-padded day"]),
)
def test_internaldate_reads_what_imapclient_reads(moment: dt.datetime, spelling: str) -> None:
    moment = moment.replace(microsecond=0)
    offset = moment.utcoffset() or dt.timedelta()
    moment = moment.replace(
        tzinfo=dt.timezone(dt.timedelta(minutes=offset // dt.timedelta(minutes=1)))
    )
    raw = internaldate_text(moment)[1:-1]
    if spelling == "lower":
        raw = raw.lower()
    elif spelling == "space-padded day" and raw[:1] == b"0":
        raw = b" " + raw[1:]
    fast = atoms.internaldate(raw)
    assert fast == atoms._slow_internaldate(raw) == moment
    assert fast.utcoffset() == moment.utcoffset()


@pytest.mark.parametrize("raw", [b"31-Feb-2020 10:00:00 +0000", b"1-Foo-2020 10:00:00 +0000"])
def test_dates_the_fast_path_refuses_go_to_imapclient(raw: bytes) -> None:
    with pytest.raises(ValueError):
        atoms.internaldate(raw)
