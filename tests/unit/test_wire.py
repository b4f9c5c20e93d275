import datetime as dt

import pytest

from mailferry.adapters.imap.wire import (
    _appenduid_set,
    flag_list,
    internaldate,
    parse_list,
    parse_status,
    quote_mailbox,
    uid_set,
)


def test_parse_list_handles_atoms_quoted_literals_and_nil():
    data = [
        b'(\\HasNoChildren) "/" c[c',
        b'(\\Noselect \\HasChildren) "/" "[Gmail]"',
        b'(\\HasNoChildren) "/" "quo\\"te"',
        (b'(\\HasNoChildren) "/" {6}', b"a{b}c\\"),
        b'(\\HasNoChildren \\Sent) "." "Entw&APw-rfe"',
        b"() NIL flat",
        None,
    ]
    parsed = parse_list(data)
    assert [name for _f, _d, name in parsed] == [
        "c[c",
        "[Gmail]",
        'quo"te',
        "a{b}c\\",
        "Entwürfe",
        "flat",
    ]
    assert parsed[1][0] == {"\\Noselect", "\\HasChildren"}
    assert parsed[4][0] == {"\\HasNoChildren", "\\Sent"}
    assert parsed[4][1] == "."
    assert parsed[5][1] is None


def test_uid_set_compresses_runs():
    assert uid_set([5, 1, 2, 3, 9, 10, 12, 3]) == "1:3,5,9:10,12"
    assert uid_set([]) == ""


def test_internaldate_is_locale_free_and_keeps_the_zone():
    moment = dt.datetime(
        2009, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))
    )
    assert internaldate(moment) == b'"03-Feb-2009 04:05:06 -0330"'
    with pytest.raises(ValueError, match="timezone"):
        internaldate(dt.datetime(2009, 2, 3))  # noqa: DTZ001 - never silently "now" or local time


def test_quote_mailbox_encodes_modified_utf7_and_escapes():
    assert quote_mailbox("R&D") == b'"R&-D"'
    assert quote_mailbox('a"b\\c') == b'"a\\"b\\\\c"'
    assert quote_mailbox("Entwürfe") == b'"Entw&APw-rfe"'


def test_flag_list_is_sorted_and_parenthesised():
    assert flag_list({"\\Seen", "$Label1"}) == b"($Label1 \\Seen)"
    assert flag_list(()) == b"()"


def test_parse_status_ignores_the_mailbox_name():
    assert parse_status([b"c[c (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 77)"]) == {
        b"MESSAGES": 3,
        b"UIDNEXT": 9,
        b"UIDVALIDITY": 77,
    }
    assert parse_status([(b"{4}", b"(x) "), b" (HIGHESTMODSEQ 12)"]) == {b"HIGHESTMODSEQ": 12}


def test_appenduid_sets_expand_in_order():
    assert _appenduid_set(b"[APPENDUID 38505 3955:3957,3960] done") == [3955, 3956, 3957, 3960]
    assert _appenduid_set(b"[APPENDUID 1 7] ok") == [7]
    assert _appenduid_set(b"OK no code") is None
