"""FETCH answers read by meaning (adapters/imap/rows.py) and UID sets cut to a line length (wire.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient.exceptions import ProtocolError

from mailferry.adapters.imap.rows import MESSAGE_ID, by_uid, item_name, parse_rows
from mailferry.adapters.imap.wire import uid_set, uid_sets


@pytest.mark.parametrize(
    "raw",
    [
        b"BODY[HEADER.FIELDS (MESSAGE-ID)]",
        b'BODY[HEADER.FIELDS ("MESSAGE-ID")]',
        b'body[header.fields ("Message-ID")]',
        b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]",
        b"BODY[HEADER.FIELDS ( MESSAGE-ID )]",
    ],
)
def test_header_fields_item_names_mean_one_thing(raw):
    assert item_name(raw) == MESSAGE_ID


def test_partial_body_is_the_body():
    assert item_name(b"BODY[]<4194304>") == "BODY[]"
    assert item_name("BODY.PEEK[]") == "BODY[]"


def test_rows_keep_uid_seq_and_literal_items():
    data = [
        (
            b'1 (UID 7 RFC822.SIZE 12 BODY[HEADER.FIELDS ("MESSAGE-ID")] {17}',
            b"Message-ID: <a>\r\n",
        ),
        b")",
        b"2 (FLAGS (\\Seen) UID 9)",
    ]
    rows = list(parse_rows(data))
    assert [(r.seq, r.uid) for r in rows] == [(1, 7), (2, 9)]
    assert rows[0].items[MESSAGE_ID] == b"Message-ID: <a>\r\n"
    assert rows[0].items["RFC822.SIZE"] == 12
    assert rows[1].items["FLAGS"] == (b"\\Seen",)


def test_pushed_rows_without_uid_are_never_filed_under_a_uid():
    data = [b"5 (FLAGS (\\Flagged))", b"1 (UID 5 FLAGS (\\Seen))", b"3 (FLAGS (\\Deleted))"]
    found = by_uid(parse_rows(data))
    assert found == {5: {"FLAGS": (b"\\Seen",)}}


def test_rows_outside_what_was_asked_are_left_out():
    data = [b"1 (UID 10 FLAGS ())", b"2 (UID 11 FLAGS ())", b"9 (UID 40 FLAGS (\\Seen))"]
    assert set(by_uid(parse_rows(data), seqs=range(1, 3))) == {10, 11}
    assert set(by_uid(parse_rows(data), uids={11, 40})) == {11, 40}
    assert set(by_uid(parse_rows([b"4 (UID 3 MODSEQ (9))"]), having="FLAGS")) == set()


def test_two_rows_of_one_message_merge_newest_last():
    data = [b"1 (UID 5 FLAGS () RFC822.SIZE 3)", b"1 (UID 5 FLAGS (\\Seen))"]
    assert by_uid(parse_rows(data)) == {5: {"FLAGS": (b"\\Seen",), "RFC822.SIZE": 3}}


def test_malformed_rows_are_a_protocol_error():
    with pytest.raises(ProtocolError):
        list(parse_rows([b"1 (UID 5 FLAGS)"]))
    assert list(parse_rows([None])) == []


@given(st.sets(st.integers(1, 10**7), max_size=3000), st.integers(20, 500))
def test_uid_sets_cover_every_uid_once_within_the_length(uids, limit):
    pieces = list(uid_sets(uids, max_chars=limit))
    assert all(len(p) <= limit or "," not in p for p in pieces)
    again: list[int] = []
    for piece in pieces:
        for part in piece.split(","):
            low, _, high = part.partition(":")
            again.extend(range(int(low), int(high or low) + 1))
    assert sorted(again) == sorted(uids)
    assert ",".join(pieces) == uid_set(uids)
