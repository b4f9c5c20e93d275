"""One Outlook item from a PST (read with libpff, ``pypff``) as an RFC 822 message, flags, date.

A PST keeps no MIME message: it keeps the transport headers a message arrived with (mail that
came over the internet) and the body and attachments as properties. The message handed out is
those headers (their Content-* and MIME-Version fields replaced) over a MIME body built from the
properties: plain text and HTML as alternatives, then the attachments. An item with neither
(Outlook's "Rich Text" mail) has its RTF body read (``domain/rtf.py``): the HTML or text it
encapsulates, else the RTF rendered as plain text (formatting and embedded pictures not kept:
``pst.RENDERED`` says so per folder). An item without transport headers (mail written in
Outlook, items from Exchange) gets headers rebuilt from its properties (From, To, Cc, Subject,
Date, Message-ID): ``Built.rebuilt`` is True and the caller reports it.
Building is deterministic (MIME boundaries are derived from the item), so the same item gives the
same bytes on every run: its content hash identifies it.

Over 400 lines (~420): the stock way and the template way of building (pstmime.py) share the
skeleton, the frames and the property helpers kept here.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol, cast

from mailferry.adapters.files import pstcodepage, pstmime
from mailferry.adapters.files.pstmime import POLICY, flatten
from mailferry.adapters.files.pstprops import rtf_body

# MAPI property tags
SUBJECT = 0x0037
CLIENT_SUBMIT_TIME = 0x0039
TRANSPORT_HEADERS = 0x007D
SENDER_NAME = 0x0C1A
SENDER_EMAIL = 0x0C1F
SENDER_SMTP = 0x5D01
DELIVERY_TIME = 0x0E06
MESSAGE_FLAGS = 0x0E07
CREATION_TIME = 0x3007
INTERNET_MESSAGE_ID = 0x1035
LAST_VERB = 0x1081
FLAG_STATUS = 0x1090
INTERNET_CPID = 0x3FDE
CONTAINER_CLASS = 0x3613
DISPLAY_NAME = 0x3001
EMAIL_ADDRESS = 0x3003
SMTP_ADDRESS = 0x39FE
RECIPIENT_TYPE = 0x0C15
ATTACH_LONG_FILENAME = 0x3707
ATTACH_FILENAME = 0x3704
ATTACH_MIME_TAG = 0x370E
ATTACH_METHOD = 0x3705

READ, UNSENT = 0x1, 0x8  # PR_MESSAGE_FLAGS bits
FLAGGED = 2  # PR_FLAG_STATUS
REPLIED, FORWARDED = (102, 103), 104  # PR_LAST_VERB_EXECUTED: reply, reply all; forward


def properties(item: Any) -> dict[int, Any]:
    """The item's first record set: property tag -> libpff entry."""
    found: dict[int, Any] = {}
    for index in range(item.number_of_record_sets):
        for entry in item.get_record_set(index).entries:
            found.setdefault(entry.entry_type, entry)
        break
    return found


def text(props: dict[int, Any], tag: int, codec: str | None = None) -> str | None:
    """A string property; a PtypString8 one in the code page the item declares (``codec``, else
    the one ``props`` name: ``pstcodepage``), else as libpff decodes it."""
    entry = props.get(tag)
    if entry is None or entry.data is None:
        return None
    try:
        value = None
        if int(entry.value_type) == pstcodepage.STRING8:  # its code page looked up only then
            value = pstcodepage.decode(entry, codec or pstcodepage.declared(props))
        if value is None:
            value = entry.data_as_string
    except (OSError, TypeError, ValueError):
        return None
    return str(value).rstrip("\x00") if value else None


def number(props: dict[int, Any], tag: int) -> int | None:
    entry = props.get(tag)
    if entry is None or entry.data is None:
        return None
    try:
        return int(entry.data_as_integer)
    except (OSError, TypeError, ValueError):
        return None


def moment(props: dict[int, Any], tag: int) -> dt.datetime | None:
    entry = props.get(tag)
    if entry is None or entry.data is None:
        return None
    try:
        value = entry.data_as_datetime
    except (OSError, TypeError, ValueError):
        return None
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) else None


def flags_of(props: dict[int, Any]) -> frozenset[str]:
    flags = set()
    bits = number(props, MESSAGE_FLAGS) or 0
    if bits & READ:
        flags.add("\\Seen")
    if bits & UNSENT:
        flags.add("\\Draft")
    if number(props, FLAG_STATUS) == FLAGGED:
        flags.add("\\Flagged")
    verb = number(props, LAST_VERB)
    if verb in REPLIED:
        flags.add("\\Answered")
    elif verb == FORWARDED:
        flags.add("$Forwarded")
    return frozenset(flags)


def received(props: dict[int, Any]) -> dt.datetime:
    """Delivery time, else the time it was sent, else created (Outlook's own order)."""
    for tag in (DELIVERY_TIME, CLIENT_SUBMIT_TIME, CREATION_TIME):
        found = moment(props, tag)
        if found is not None:
            return found
    return dt.datetime.fromtimestamp(0, tz=dt.UTC)


@dataclass(frozen=True)
class Built:
    data: bytes
    rebuilt: bool  # headers made from properties (no transport headers in the PST)


@dataclass(frozen=True)
class Frame:
    """A measured message's bytes around its attachments' base64 (one piece more than it has
    attachments), and the attachments' bytes as measuring read them: the message is built again
    from it without the email package (``build(..., frame)``), and without libpff when ``data``
    is kept (libpff reads an attachment's data whenever it is opened, at ~100 MB/s: reading it
    once instead of twice was a third of the time of a PST full of attachments)."""

    pieces: tuple[bytes, ...]
    rebuilt: bool
    data: tuple[bytes, ...] | None = None  # None: read the attachments again

    @property
    def size(self) -> int:
        kept = sum(len(content) for content in self.data) if self.data else 0
        return sum(len(piece) for piece in self.pieces) + kept

    def bare(self) -> Frame:
        """The frame without the attachments' bytes (they are read again for the copy)."""
        return Frame(self.pieces, self.rebuilt)


@dataclass(frozen=True)
class Measured:
    """What a folder listing needs of an item without the cost of building it: its exact size
    and its header block (for the Message-ID). The attachments are not encoded; their data is
    read only when libpff reads it to open them (kept in the frame, then)."""

    size: int
    head: bytes
    frame: Frame | None  # None when the bytes cannot be put together from pieces (rare)


def build(
    item: Any,
    props: dict[int, Any],
    frame: Frame | None = None,
    attachments: list[Attachment] | None = None,
) -> Built:
    """The item as RFC 822 bytes (CRLF); OSError/ValueError when libpff cannot read a part.

    The MIME structure is flattened with one placeholder line per attachment, and the base64 of
    each attachment is put in its place as bytes: the email package never sees the attachments'
    data, which made it the slow part (the bytes are those ``as_bytes`` gives; tests hold it).
    Given the ``frame`` that measuring the item gave, only the attachments are read again (or not
    at all, when the frame kept them). ``attachments``: the item's, read without libpff
    (``pstnodes``), their data read here."""
    built = from_frame(frame)
    if built is not None:
        return built
    if frame is not None:
        data = _attachments(item) if attachments is None else [a.content() for a in attachments]
        if (built := from_frame(frame, data)) is not None:
            return built
    skeleton = _skeleton(item, props, attachments)
    pieces = skeleton.flat.split(skeleton.marker)
    if len(pieces) != len(skeleton.attachments) + 1:  # the marker is in a body too: the long way
        stock, body, parts = _stock_skeleton(item, props, skeleton.attachments)
        for part, content in zip(parts, stock.data, strict=True):
            part.set_payload(pstmime.base64_lines(content))
        return Built(stock.prefix + flatten(body), stock.rebuilt)
    return Built(skeleton.prefix + _splice(pieces, skeleton.data), skeleton.rebuilt)


def from_frame(frame: Frame | None, data: Sequence[bytes] | None = None) -> Built | None:
    """The message from a frame and its attachments' bytes (``data``, else those the frame kept);
    None without them."""
    data = frame.data if frame is not None and data is None else data
    if frame is None or data is None or len(data) + 1 != len(frame.pieces):
        return None
    return Built(_splice(frame.pieces, list(data)), frame.rebuilt)


def measure(
    item: Any, props: dict[int, Any], attachments: list[Attachment] | None = None
) -> Measured:
    """``len(build(item, props).data)``, the header block and the frame, without encoding
    attachments (``attachments``: the item's, when they were read already)."""
    skeleton = _skeleton(item, props, attachments)
    sizes = [attachment.size for attachment in skeleton.attachments]
    size = len(skeleton.prefix) + len(skeleton.flat)
    size += sum(pstmime.base64_size(n) - len(skeleton.marker) for n in sizes)
    pieces = skeleton.flat.split(skeleton.marker)
    frame = None
    if len(pieces) == len(sizes) + 1:
        head = skeleton.prefix + pieces[0]
        read = all(isinstance(a.data, bytes) for a in skeleton.attachments)
        data = tuple(skeleton.data) if read else None  # not read: read when copied
        frame = Frame((head, *pieces[1:]), skeleton.rebuilt, data)
    return Measured(size, skeleton.prefix + skeleton.flat, frame)


def _splice(pieces: Sequence[bytes], data: list[bytes]) -> bytes:
    out = [pieces[0]]
    for content, piece in zip(data, pieces[1:], strict=True):
        out.append(pstmime.base64_crlf(content))
        out.append(piece)
    return b"".join(out)


class Stored(Protocol):
    """An attachment's data not read yet (``pstnodes.Blob``)."""

    @property
    def size(self) -> int: ...

    def read(self) -> bytes: ...


@dataclass(frozen=True)
class Attachment:
    """What a message's part needs of an attachment (``attachment``, ``described``)."""

    maintype: str
    subtype: str
    name: str
    data: bytes | Stored

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else self.data.size

    def content(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else self.data.read()


@dataclass
class _Skeleton:
    prefix: bytes  # the transport headers kept, or nothing
    flat: bytes  # the MIME body flattened, each attachment's payload the marker line
    marker: bytes  # the placeholder line as flattened, CRLF included
    attachments: list[Attachment]
    rebuilt: bool

    @property
    def data(self) -> list[bytes]:
        """Each attachment's bytes (read now, when they were not)."""
        return [attachment.content() for attachment in self.attachments]


def _skeleton(
    item: Any, props: dict[int, Any], attachments: list[Attachment] | None = None
) -> _Skeleton:
    """The message around its attachments' data: for an item with transport headers, written
    from a template (``pstmime``) where that gives the email package's bytes, else by it."""
    if attachments is None:
        count = item.number_of_attachments
        codec = pstcodepage.declared(props)
        attachments = [attachment(item.get_attachment(i), codec) for i in range(count)]
    headers = text(props, TRANSPORT_HEADERS)
    blocks = [pstmime.attachment_headers(a.maintype, a.subtype, a.name) for a in attachments]
    if not headers or None in blocks:
        return _stock_skeleton(item, props, attachments)[0]
    texts = [
        pstmime.Text(kind, *pstmime.encode_text(value)) for kind, value in _bodies(item, props)
    ]
    seed = _seed(item, props)
    line = f"=_mailferry_{seed}_data\r\n".encode()
    flat = pstmime.flat_body(texts, cast("list[bytes]", blocks), seed, line)
    return _Skeleton(pstmime.transport_head(headers), flat, line, attachments, rebuilt=False)


def _stock_skeleton(
    item: Any, props: dict[int, Any], attachments: list[Attachment]
) -> tuple[_Skeleton, EmailMessage, list[EmailMessage]]:
    """The skeleton as the email package makes it, its message and the attachments' parts."""
    body = _mime_body(item, props)
    seed = _seed(item, props)
    marker = f"=_mailferry_{seed}_data"
    parts = []
    for attachment in attachments:
        body.add_attachment(
            b"", maintype=attachment.maintype, subtype=attachment.subtype, filename=attachment.name
        )
        part = cast("list[EmailMessage]", body.get_payload())[-1]  # the part just added: its
        # headers do not depend on the data
        part.set_payload(f"{marker}\n")
        parts.append(part)
    for n, part in enumerate(body.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_mailferry_{seed}_{n}")
    headers = text(props, TRANSPORT_HEADERS)
    prefix = pstmime.transport_head(headers) if headers else b""
    if not headers:
        _rebuild_headers(body, item, props)
    line = f"{marker}\r\n".encode()
    flat = flatten(body)
    return _Skeleton(prefix, flat, line, attachments, rebuilt=not headers), body, parts


def _seed(item: Any, props: dict[int, Any]) -> str:
    """What the item's MIME boundaries are made of: the same item, the same bytes."""
    seed = hashlib.sha256(str(item.identifier).encode() + (text(props, SUBJECT) or "").encode())
    return seed.hexdigest()[:24]


def _mime_body(item: Any, props: dict[int, Any]) -> EmailMessage:
    """The bodies as alternatives; the attachments are added by ``_stock_skeleton``."""
    body = EmailMessage(policy=POLICY)
    bodies = _bodies(item, props)
    if not bodies:
        body.set_content("")
    for n, (subtype, value) in enumerate(bodies):
        if n == 0:
            body.set_content(value, subtype=subtype)
        else:
            body.add_alternative(value, subtype=subtype)
    return body


def _bodies(item: Any, props: dict[int, Any]) -> list[tuple[str, str]]:
    """The item's bodies as (subtype, text): plain text first, then HTML; none when it has none."""
    plain = item.plain_text_body
    html = item.html_body
    codepage = _codec(number(props, INTERNET_CPID))
    # A body in neither (HTML, which libpff does not convert): the code page the item declares.
    ansi = pstcodepage.declared(props, libpff=False) or "utf-8"
    found = []
    if plain:
        found.append(("plain", _decode(plain, "utf-8", codepage, ansi)))
    if html:
        found.append(("html", _decode(html, codepage, "utf-8", ansi)))
    if not found and (body := rtf_body(item)) is not None:
        found.append((body.kind, body.text))
    return found


def _codec(codepage: int | None) -> str:
    return "utf-8" if codepage in {None, 65001} else f"cp{codepage}"


def _decode(data: bytes, *encodings: str) -> str:
    """Text in the first of ``encodings`` that decodes it (libpff gives plain text bodies as
    UTF-8, converted by the item's code pages, and HTML as the bytes the PST keeps)."""
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", "replace")


def attachment(pff_attachment: Any, codec: str | None = None) -> Attachment:
    """An attachment's MIME type, file name and bytes (a text type is kept as bytes); ``codec``:
    its message's code page (``pstcodepage``)."""
    props = properties(pff_attachment)
    return described(
        text(props, ATTACH_LONG_FILENAME, codec),
        text(props, ATTACH_FILENAME, codec),
        text(props, ATTACH_MIME_TAG, codec),
        _data(pff_attachment),
    )


def described(
    long_name: str | None, short_name: str | None, mime_tag: str | None, data: bytes | Stored
) -> Attachment:
    """An attachment from its long and short file names, MIME tag and data."""
    name = long_name or short_name or "attachment"
    maintype, _, subtype = (mime_tag or "").partition("/")
    if maintype == "text" or not _token(maintype) or not _token(subtype):
        # text: keep the bytes as they are; a tag that is not type/subtype (RFC 2045 tokens) would
        # fail the whole message (the email package refuses non-ASCII) or break its header block
        maintype, subtype = "application", "octet-stream"
    return Attachment(maintype, subtype, name, data)


_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')


def _token(word: str) -> bool:
    """An RFC 2045 token: printable ASCII, no space, no tspecial."""
    return bool(word) and all("!" <= c <= "~" and c not in _TSPECIALS for c in word)


def _attachments(item: Any) -> list[bytes]:
    return [_data(item.get_attachment(i)) for i in range(item.number_of_attachments)]


def _data(attachment: Any) -> bytes:
    size = attachment.size or 0
    return bytes(attachment.read_buffer(size)) if size else b""


def _rebuild_headers(body: EmailMessage, item: Any, props: dict[int, Any]) -> None:
    sender = text(props, SENDER_SMTP) or text(props, SENDER_EMAIL) or ""
    name = text(props, SENDER_NAME) or ""
    content = {k: body[k] for k in ("MIME-Version", "Content-Type", "Content-Transfer-Encoding")}
    for key in content:
        del body[key]
    body["From"] = email.utils.formataddr((name, sender)) if sender else name or "unknown"
    for kind, field in ((1, "To"), (2, "Cc")):
        addresses = _recipients(item, kind, pstcodepage.declared(props))
        if addresses:
            body[field] = ", ".join(addresses)
    body["Subject"] = subject(props)
    sent = moment(props, CLIENT_SUBMIT_TIME) or received(props)
    body["Date"] = email.utils.format_datetime(sent)
    message_id = text(props, INTERNET_MESSAGE_ID)
    if message_id:
        body["Message-ID"] = message_id
    for key, value in content.items():
        if value is not None:
            body[key] = value


def subject(props: dict[int, Any]) -> str:
    """PR_SUBJECT as a header value. A subject may start with MAPI's prefix marker, U+0001 and
    the length of the prefix ("Accepted: "); a length of 11 or 12 is a character the email
    package reads as a line break (such an item failed as "damaged"). Only then is the marker
    dropped and the value made one line: subjects that could be built before keep their bytes
    (copies made by earlier versions are known by their hash)."""
    value = text(props, SUBJECT) or ""
    if len(value.splitlines()) <= 1:
        return value
    if value.startswith("\x01"):
        value = value[2:]
    return _one_line(value)


def _one_line(value: str) -> str:
    """No line breaks (``str.splitlines``' own, which the email package refuses in a header)."""
    return " ".join(value.splitlines())


def _recipients(item: Any, kind: int, codec: str | None) -> list[str]:
    found: list[str] = []
    table = item.recipients
    if table is None:
        return found
    for index in range(table.number_of_record_sets):
        props = {e.entry_type: e for e in table.get_record_set(index).entries}
        if number(props, RECIPIENT_TYPE) != kind:
            continue
        address = text(props, SMTP_ADDRESS, codec) or text(props, EMAIL_ADDRESS, codec) or ""
        name = text(props, DISPLAY_NAME, codec) or ""
        if address or name:
            found.append(email.utils.formataddr((name, address)) if address else name)
    return found
