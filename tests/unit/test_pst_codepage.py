"""Non-Unicode strings of an ANSI PST in the code page each item declares (``pstcodepage``).

No ANSI PST can be shipped (none with a licence that allows it was found; see the note in
tests/data/pst/NOTICE.md), so the items here are stand-ins with pypff's attributes: entries
whose ``data`` are the bytes an ANSI PST keeps and whose ``data_as_string`` is what libpff gives
for them (its default code page, windows-1252)."""

from __future__ import annotations

import email
import email.policy
import struct
from typing import Any

import pytest

from mailferry.adapters.files import pstcodepage, pstmail
from mailferry.adapters.files.pstprops import mapi_item
from mailferry.domain import mapi

STRING8, INT32, MV_STRING8 = 0x001E, 0x0003, 0x101E
CHILDRENS_NAMES = 0x3A58  # PidTagChildrensNames, PtypMultipleString


class Entry:
    def __init__(self, tag: int, kind: int, data: bytes) -> None:
        self.entry_type, self.value_type, self.data = tag, kind, data

    @property
    def data_as_string(self) -> str:  # what libpff gives: its one code page for the file
        return self.data.decode("cp1252", "replace")

    @property
    def data_as_integer(self) -> int:
        return int.from_bytes(self.data, "little")


def ansi(tag: int, value: str, codec: str) -> Entry:
    return Entry(tag, STRING8, value.encode(codec) + b"\x00")


def codepage(number: int) -> Entry:
    return Entry(pstcodepage.MESSAGE_CODEPAGE, INT32, number.to_bytes(4, "little"))


class Records:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries


class Table:
    def __init__(self, rows: list[list[Entry]]) -> None:
        self.rows = rows
        self.number_of_record_sets = len(rows)

    def get_record_set(self, index: int) -> Records:
        return Records(self.rows[index])


class Item:
    """A pypff message (or attachment) with one record set."""

    identifier = 7
    number_of_record_sets = 1
    plain_text_body = b"body"
    html_body = None
    rtf_body = None

    def __init__(self, entries: list[Entry], recipients=(), attachments=(), data=b"") -> None:
        self.entries = entries
        self.recipients = Table([list(row) for row in recipients])
        self.attachments = list(attachments)
        self.number_of_attachments = len(self.attachments)
        self.size, self.data = len(data), data

    @property
    def subject(self) -> str | None:  # libpff's: its code page, the prefix marker dropped
        found = [e for e in self.entries if e.entry_type == pstmail.SUBJECT]
        text = found[0].data_as_string.rstrip("\x00") if found else None
        return text[2:] if text and text.startswith("\x01") else text

    def get_record_set(self, index: int) -> Records:
        return Records(self.entries)

    def get_attachment(self, index: int) -> Item:
        return self.attachments[index]

    def read_buffer(self, size: int) -> bytes:
        return self.data[:size]


def russian_message(declared: Entry | None) -> Item:
    cp = "cp1251"
    attachment = Item(
        [
            ansi(pstmail.ATTACH_LONG_FILENAME, "отчёт.txt", cp),
            ansi(pstmail.ATTACH_MIME_TAG, "application/pdf", cp),
        ],
        data=b"%PDF",
    )
    recipient = [
        Entry(pstmail.RECIPIENT_TYPE, INT32, (1).to_bytes(4, "little")),
        ansi(pstmail.DISPLAY_NAME, "Мария Иванова", cp),
        ansi(pstmail.SMTP_ADDRESS, "maria@example.ru", cp),
    ]
    entries = [
        ansi(pstmail.SUBJECT, "Отчёт за май", cp),
        ansi(pstmail.SENDER_NAME, "Пётр Сидоров", cp),
        ansi(pstmail.SENDER_SMTP, "petr@example.ru", cp),
    ]
    return Item(
        [*entries, *([declared] if declared else [])],
        recipients=[recipient],
        attachments=[attachment],
    )


def built(item: Item) -> email.message.EmailMessage:
    data = pstmail.build(item, pstmail.properties(item)).data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_a_message_that_declares_its_code_page_is_read_in_it():
    """A rebuilt message of a Russian Outlook's ANSI PST: subject, sender, recipient and the
    attachment's name in windows-1251, as PidTagMessageCodepage says (libpff: mojibake)."""
    message = built(russian_message(codepage(1251)))
    assert message["Subject"] == "Отчёт за май"
    assert message["From"].addresses[0].display_name == "Пётр Сидоров"
    assert message["To"].addresses[0].display_name == "Мария Иванова"
    (part,) = list(message.iter_attachments())
    assert part.get_filename() == "отчёт.txt"
    assert part.get_content_type() == "application/pdf"


@pytest.mark.parametrize("declared", [None, codepage(1252), codepage(4242)])
def test_without_a_code_page_other_than_1252_libpffs_decoding_stands(declared: Entry | None):
    """None declared, windows-1252 itself, or one Python does not know: the strings as libpff
    decodes them, so what earlier versions built from such items keeps its bytes."""
    message = built(russian_message(declared))
    assert message["Subject"] == "Отчёт за май".encode("cp1251").decode("cp1252")


def test_an_items_properties_recipients_and_lists_are_read_in_its_code_page():
    """A Greek contact, for the calendar and contact conversions (``mapi_item``): PtypString8,
    a multi-valued one, a recipient row; the subject's prefix marker dropped as libpff drops it."""
    cp = "cp1253"
    names = "Ελένη".encode(cp) + b"\x00", "Νίκος".encode(cp) + b"\x00"
    offsets = struct.pack("<III", 2, 12, 12 + len(names[0]))
    entries = [
        ansi(mapi.DISPLAY_NAME, "Γιώργος Παπαδόπουλος", cp),
        ansi(pstmail.SUBJECT, "\x01\x04ΣΔ: Συνάντηση", cp),
        Entry(CHILDRENS_NAMES, MV_STRING8, offsets + b"".join(names)),
        codepage(1253),
    ]
    row = [ansi(pstmail.DISPLAY_NAME, "Μαρία", cp)]
    read = mapi_item(Item(entries, recipients=[row]), {})
    assert read.text(mapi.DISPLAY_NAME) == "Γιώργος Παπαδόπουλος"
    assert read.text(0x0037) == "ΣΔ: Συνάντηση"
    assert read.tagged[CHILDRENS_NAMES] == ("Ελένη", "Νίκος")
    assert read.recipients[0][pstmail.DISPLAY_NAME] == "Μαρία"
    assert read.codec == "cp1253"  # for what is read later: a list's one-off entries


@pytest.mark.parametrize(
    ("number", "codec"),
    [
        (None, None),
        (1252, None),
        (1251, "cp1251"),
        (932, "cp932"),
        (936, "gbk"),
        (65001, "utf-8"),
        (28595, "iso8859-5"),
        (20866, "koi8-r"),
        (50220, "iso2022_jp"),
        (4242, None),
    ],
)
def test_code_page_numbers_name_pythons_codecs(number: int | None, codec: str | None):
    assert pstcodepage.codec_of(number) == codec


def test_an_entry_of_another_type_or_without_a_codec_is_left_to_libpff():
    unicode = Entry(pstmail.SUBJECT, 0x001F, "x".encode("utf-16-le"))
    assert pstcodepage.decode(unicode, "cp1251") is None
    assert pstcodepage.decode(ansi(pstmail.SUBJECT, "x", "cp1251"), None) is None
    broken: Any = Entry(pstcodepage.MESSAGE_CODEPAGE, INT32, b"")
    broken.data = None
    assert pstcodepage.declared({pstcodepage.MESSAGE_CODEPAGE: broken}) is None


@pytest.mark.parametrize(
    ("number", "body"),
    [(1251, "<p>Добрый день, см. отчёт.</p>"), (1252, "<p>Grüße</p>"), (1253, "<p>Καλημέρα</p>")],
)
def test_an_html_body_in_no_code_page_named_for_it_is_read_in_the_items(number, body):
    """libpff hands HTML over as the bytes the PST keeps (a binary property; plain text it
    converts to UTF-8 itself, by PidTagInternetCodepage, then PidTagMessageCodepage). HTML that
    is not UTF-8 and whose item names no PidTagInternetCodepage was read as UTF-8 with U+FFFD for
    every letter it could not decode; now in the code page the item declares (1252 included:
    these bytes are not libpff's to decode)."""
    item = russian_message(codepage(number))
    item.plain_text_body, item.html_body = None, body.encode(f"cp{number}")
    assert built(item).get_body(("html",)).get_content().rstrip() == body


def test_an_html_body_of_an_item_that_declares_nothing_is_read_as_before():
    item = russian_message(None)
    item.plain_text_body, item.html_body = None, "<p>Grüße</p>".encode("cp1252")
    assert built(item).get_body(("html",)).get_content().rstrip() == "<p>Gr\ufffd\ufffde</p>"
