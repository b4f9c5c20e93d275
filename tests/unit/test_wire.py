import datetime as dt
import io

import pytest

from mailferry.adapters.imap.session import Client
from mailferry.adapters.imap.statuses import WINDOW, list_status, pipelined_status, wire_name
from mailferry.adapters.imap.wire import (
    Pipeline,
    _appenduid_set,
    flag_list,
    internaldate,
    parse_list,
    parse_status,
    quote_mailbox,
    uid_set,
)
from mailferry.domain.errors import ConnectError
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


class ScriptedServer:
    """A connection whose server side is a script: what it says, and what it was sent."""

    def __init__(self, said: bytes) -> None:
        self._said = io.BytesIO(said)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def readline(self) -> bytes:
        return self._said.readline()

    def read(self, size: int) -> bytes:
        return self._said.read(size)


def test_list_status_reads_every_spelling_of_a_name():
    server = ScriptedServer(
        b'* LIST (\\HasNoChildren) "/" "a b"\r\n'
        b'* STATUS "a b" (MESSAGES 2 UIDNEXT 9 UIDVALIDITY 7 HIGHESTMODSEQ 40)\r\n'
        b"* STATUS inbox (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)\r\n"
        b'* STATUS {6}\r\nx (y)" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 5)\r\n'
        b'* STATUS "Entw&APw-rfe" (MESSAGES 4 UIDNEXT 5 UIDVALIDITY 6)\r\n'
        b'* STATUS "Entw\xfcrfe" (MESSAGES 8 UIDNEXT 5 UIDVALIDITY 6)\r\n'
        b"* OK [ALERT] nothing to do with it\r\n"
        b"mf1 OK done\r\n"
    )
    found = list_status(Pipeline(server), ["MESSAGES", "UIDNEXT", "UIDVALIDITY"], close=None)
    assert server.sent == [b'mf1 LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY))\r\n']
    assert found[wire_name("a b")] == {
        b"MESSAGES": 2,
        b"UIDNEXT": 9,
        b"UIDVALIDITY": 7,
        b"HIGHESTMODSEQ": 40,
    }
    assert found[wire_name("INBOX")][b"UIDVALIDITY"] == 3
    assert found[wire_name('x (y)"')][b"UIDVALIDITY"] == 5
    assert found[wire_name("Entwürfe")][b"MESSAGES"] == 4
    assert found[wire_name(RawName("Entwürfe", b"Entw\xfcrfe"))][b"MESSAGES"] == 8  # raw 8-bit
    assert len(found) == 5


def test_list_status_refused_as_a_whole_knows_nothing():
    server = ScriptedServer(b"mf1 BAD unknown argument\r\n")
    assert list_status(Pipeline(server), ["MESSAGES"], close=None) == {}


def test_list_status_with_inbox_open_writes_the_three_commands_at_once():
    """INBOX opened around the LIST (statuses.py); its status, asked items only, from the
    EXAMINE when the LIST leaves the selected folder out."""
    server = ScriptedServer(
        b"* 3 EXISTS\r\n* OK [UIDVALIDITY 4] x\r\n* OK [UIDNEXT 9] x\r\n"
        b"* OK [HIGHESTMODSEQ 12] x\r\nmf1 OK [READ-ONLY] done\r\n"
        b"* STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)\r\nmf2 OK done\r\n"
        b"mf3 OK done\r\n"
    )
    items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    found = list_status(Pipeline(server), items, close=b"UNSELECT")
    written = b'mf1 EXAMINE INBOX\r\nmf2 LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY))'
    assert server.sent == [written + b"\r\nmf3 UNSELECT\r\n"]  # one write: one round trip
    assert found[b"INBOX"] == {b"MESSAGES": 3, b"UIDNEXT": 9, b"UIDVALIDITY": 4}
    assert found[wire_name("Sent")][b"UIDNEXT"] == 2


def test_pipelined_status_sends_windows_ahead_and_leaves_out_refusals():
    names = [f"f{i}" for i in range(WINDOW * 2 + 30)]
    script = b""
    for i, name in enumerate(names, start=1):
        if i == 7:
            script += b"mf7 NO [NONEXISTENT] Mailbox doesn't exist\r\n"
            continue
        script += b"* STATUS %s (MESSAGES %d UIDNEXT 1 UIDVALIDITY 1)\r\n" % (name.encode(), i)
        script += b"mf%d OK done\r\n" % i
    server = ScriptedServer(script)
    found = pipelined_status(Pipeline(server), names, ["MESSAGES", "UIDNEXT", "UIDVALIDITY"])
    assert len(found) == len(names) - 1
    assert wire_name("f6") not in found
    assert found[wire_name("f100")][b"MESSAGES"] == 101
    assert len(server.sent) == 3  # one write per window, none per folder
    assert server.sent[0].count(b" STATUS ") == WINDOW
    assert server.sent[0].startswith(b'mf1 STATUS "f0" (MESSAGES UIDNEXT UIDVALIDITY)\r\n')


def test_a_bye_in_the_middle_of_pipelined_status_is_a_lost_connection():
    server = ScriptedServer(
        b"* STATUS a (MESSAGES 1 UIDNEXT 1 UIDVALIDITY 1)\r\n* BYE shutting down\r\n"
    )
    with pytest.raises(ConnectError, match="shutting down"):
        pipelined_status(Pipeline(server), ["a", "b"], ["MESSAGES"])
