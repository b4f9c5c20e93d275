import datetime as dt

import pytest

from mailferry.adapters.imap.session import Client
from mailferry.adapters.imap.wire import (
    _appenduid_set,
    flag_list,
    internaldate,
    parse_list,
    parse_status,
    quote_mailbox,
    uid_set,
)
from mailferry.domain.model import RawName


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
    assert _appenduid_set(b"[APPENDUID 38505 3955:3957,3960] done") == (
        38505,
        [3955, 3956, 3957, 3960],
    )
    assert _appenduid_set(b"[APPENDUID 1 7] ok") == (1, [7])
    assert _appenduid_set(b"OK no code") is None


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"Entw\xc3\xbcrfe", "Entwürfe"),  # raw UTF-8
        (b"Gel\xf6scht", "Gelöscht"),  # raw Latin-1: not UTF-8
        (b"&Jjo", "&Jjo"),  # a shift never closed
        (b"&*-x", "&*-x"),  # not base64
        (b"a&b", "a&b"),  # an "&" that should have been "&-"
    ],
)
def test_names_outside_modified_utf7_are_kept_and_sent_back_byte_for_byte(
    raw: bytes, text: str
) -> None:
    [(_flags, _delim, name)] = parse_list([b'(\\HasNoChildren) "/" "' + raw + b'"'])
    assert name == text
    assert isinstance(name, RawName)
    assert quote_mailbox(name) == b'"' + raw + b'"'
    assert quote_mailbox(text) != b'"' + raw + b'"'  # the same text, typed anew: modified UTF-7


def test_modified_utf7_names_are_plain_names() -> None:
    [(_f, _d, name)] = parse_list([b'() "/" "R&-D &AOk-"'])
    assert name == "R&D é"
    assert not isinstance(name, RawName)


def test_imapclient_commands_send_a_raw_name_back_raw() -> None:
    client = Client.__new__(Client)  # no connection: only the argument encoding is exercised
    assert client._normalise_folder(RawName("Gelöscht", b"Gel\xf6scht")) == b'"Gel\xf6scht"'
    assert client._normalise_folder("Entwürfe") == b'"Entw&APw-rfe"'
