"""The PST message body written from a template (``pstmime``) against the email package's way.

A message with transport headers is written from a per-shape template (its texts' encodings, its
attachment count) with its texts, boundaries and attachment headers put in; the email package's
way (``pstmail._stock_skeleton``) is what every copy made before was built with, so the two must
give the same bytes for every body and attachment the template takes, and the template must turn
down what it cannot write alike. Generated here: bodies (none, plain, HTML, both; ASCII,
non-ASCII, long lines, every kind of line end), attachments (MIME types with and without odd
characters, file names long, short, quoted, non-ASCII). The real files are compared in
``test_pst.py`` (pinned hashes of outlook.pst) and ``test_pst_collections.py``' OST.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from mailferry.adapters.files import pstmail, pstmime


class _Entry:
    value_type = 0x001F  # PtypString (Unicode), as a Unicode PST holds it

    def __init__(self, tag: int, value: str) -> None:
        self.entry_type = tag
        self.data = value.encode()
        self.data_as_string = value


class _Records:
    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = entries


class _Item:
    """Just enough of a pypff message or attachment for ``pstmail`` (one record set)."""

    recipients = None

    def __init__(self, entries=(), plain=None, html=None, attachments=(), data=b""):
        self.identifier = 11
        self.number_of_record_sets = 1
        self._records = _Records(list(entries))
        self.plain_text_body = plain
        self.html_body = html
        self._attachments = list(attachments)
        self.number_of_attachments = len(self._attachments)
        self.size = len(data)
        self._data = data

    def get_record_set(self, index):
        assert index == 0
        return self._records

    def get_attachment(self, index):
        return self._attachments[index]

    def read_buffer(self, size):
        return self._data[:size]


TEXT = st.text(
    st.one_of(
        st.sampled_from("abc xyz=.\t\r\n"),
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
    ),
    max_size=300,
) | st.builds(lambda word, n: (word + " ") * n, st.text(max_size=12), st.integers(0, 40))
TYPES = st.sampled_from(
    ["image/gif", "application/pdf", "text/plain", "IMAGE/JPEG", "application", "", "x/y z"]
) | st.text(max_size=20)
NAMES = st.sampled_from(
    ["a.pdf", "image001.gif", "my file.doc", 'say "hi".txt', "back\\slash", " lead", "x" * 70]
) | st.text(max_size=80)


def _attachment(mime: str, name: str, size: int) -> _Item:
    entries = [_Entry(pstmail.ATTACH_MIME_TAG, mime), _Entry(pstmail.ATTACH_LONG_FILENAME, name)]
    return _Item([e for e in entries if e.data], data=bytes(range(256)) * (size // 256 + 1))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plain=st.none() | TEXT,
    html=st.none() | TEXT,
    attachments=st.lists(st.tuples(TYPES, NAMES, st.integers(0, 300)), max_size=3),
)
def test_the_template_writes_what_the_email_package_does(plain, html, attachments):
    headers = _Entry(pstmail.TRANSPORT_HEADERS, "Subject: s\r\nContent-Type: text/plain\r\n\r\n")
    item = _Item(
        [headers, _Entry(pstmail.SUBJECT, "s")],
        plain=plain.encode() if plain is not None else None,
        html=html.encode() if html is not None else None,
        attachments=[_attachment(*a) for a in attachments],
    )
    props = pstmail.properties(item)
    found = [pstmail.attachment(a) for a in item._attachments]
    try:
        stock = pstmail._stock_skeleton(item, props, found)[0]
    except ValueError:  # a header the email package refuses: the template takes the same way
        with pytest.raises(ValueError, match="linefeed"):
            pstmail._skeleton(item, props)
        return
    assert pstmail._skeleton(item, props) == stock
    built = pstmail.build(item, props)
    assert pstmail.measure(item, props).size == len(built.data)


@given(TYPES, NAMES)
def test_attachment_headers_are_those_of_the_email_package_or_none(mime, name):
    item = _Item([_Entry(pstmail.TRANSPORT_HEADERS, "Subject: s\r\n")], plain=b"text")
    item._attachments = [_attachment(mime, name, 3)]
    item.number_of_attachments = 1
    props = pstmail.properties(item)
    found = pstmail.attachment(item.get_attachment(0))
    block = pstmime.attachment_headers(found.maintype, found.subtype, found.name)
    try:
        stock = pstmail._stock_skeleton(item, props, [found])[0].flat
    except ValueError:
        assert block is None
        return
    if block is not None:
        assert b"\r\n" + block + b"\r\n=_mailferry_" in stock


def test_common_attachments_and_bodies_take_the_template():
    assert pstmime.attachment_headers("image", "gif", "image001.gif") is not None
    assert pstmime.attachment_headers("application", "pdf", 'say "hi".pdf') is None
    assert pstmime.attachment_headers("application", "pdf", "é.pdf") is None
    assert pstmime.attachment_headers("application", "pdf", "x" * 60) is None  # folded
    assert pstmime.encode_text("short\n")[0] == "7bit"
    assert pstmime.encode_text("é\n")[0] == "8bit"
    assert pstmime.encode_text("x " * 60)[0] == "quoted-printable"
    assert pstmime.encode_text("é" * 60)[0] == "base64"


@pytest.mark.parametrize(
    ("tag", "kept_as"),
    [
        ("image/gif", ("image", "gif")),
        ("IMAGE/JPEG", ("IMAGE", "JPEG")),
        ("application/vnd.ms-excel", ("application", "vnd.ms-excel")),
        ("text/plain", ("application", "octet-stream")),  # its bytes as the PST holds them
        ("application", ("application", "octet-stream")),
        (";\x80;", ("application", "octet-stream")),  # the email package refused: message lost
        ("image/gif\n", ("application", "octet-stream")),  # would end the part's header block
        ("x/y z", ("application", "octet-stream")),
        ("bild/gif", ("bild", "gif")),
        ("ü/gif", ("application", "octet-stream")),
    ],
)
def test_an_attachment_type_that_is_not_type_slash_subtype_is_octet_stream(tag, kept_as):
    item = _Item([_Entry(pstmail.TRANSPORT_HEADERS, "Subject: s\r\n")], plain=b"text")
    item._attachments = [_attachment(tag, "a.bin", 3)]
    item.number_of_attachments = 1
    props = pstmail.properties(item)
    found = pstmail.attachment(item.get_attachment(0))
    assert (found.maintype, found.subtype) == kept_as
    built = pstmail.build(item, props).data
    assert f"Content-Type: {'/'.join(kept_as)}".encode() in built
    assert pstmail.measure(item, props).size == len(built)
