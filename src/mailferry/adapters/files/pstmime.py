"""The MIME body of a PST message as bytes, without the email package's header machinery.

``pstmail`` builds a body with ``EmailMessage`` (``set_content``, ``add_alternative``,
``add_attachment``) and flattens it under the SMTP policy. Most of that time (~1 ms a message)
is the policy parsing every header it sets and folding it again, for headers that are the same
in every message but for the boundary seed, the text parts' transfer encodings and the
attachments' names and types. So the flattened structure is made once per shape (which bodies,
their encodings, how many attachments) with placeholders, by the email package itself, and kept
(``_template``); a message is that template with its boundary seed, its encoded texts (what
``set_content`` would put there: ``encode_text``) and its attachments' header blocks put in.
Anything the few lines here cannot write as the email package would (a long, non-ASCII or quoted
file name, an odd MIME type) returns None: the caller takes the email package's way. The bytes
are those of the stock way; tests compare the two over generated bodies and names.
"""

from __future__ import annotations

import binascii
import io
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.quoprimime import body_encode
from email.utils import quote
from typing import cast

MAX_LINE = 78  # the SMTP policy's max_line_length
SEED = "0123456789abcdef01234567"  # stands for a message's seed (24 hex digits: same folding)
_TEXT = "=_mailferry_text_{}"
_ATTACHMENT = "=_mailferry_attachment_{}"
_SLOT = re.compile(
    rb"(" + SEED.encode() + rb"|=_mailferry_text_\d+|\r\n=_mailferry_attachment_\d+\r\n)"
)
_LINE_END = re.compile(r"\r\n|\r|\n")  # email.generator's NLCRE
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # RFC 2045 token: kept as it is
_PLAIN_NAME = re.compile(r"[!#-\[\]-~]+(?: [!#-\[\]-~]+)*")  # printable ASCII, no quote/backslash
_ROWS = 1024  # base64 lines cut at once
_ROW_BLOCK = struct.Struct("76s" * _ROWS)
_CONTENT_FIELDS = ("content-", "mime-version")
_TEMPLATES: dict[tuple[object, ...], tuple[tuple[bytes, ...], tuple[bytes, ...]]] = {}
_TEMPLATE_LIMIT = 256  # shapes kept (a few dozen in practice)


class _HeaderClasses(HeaderRegistry):
    """``HeaderRegistry`` making each header class once. The stock one makes a new class (a
    ``type()`` call) for every header it parses: a tenth of the time a message took to build."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


POLICY = SMTP.clone(header_factory=_HeaderClasses())


class _BulkGenerator(BytesGenerator):
    """``BytesGenerator`` writing a part's payload in one piece, not line by line.

    The stock generator splits every payload into lines and writes each with its line end: a
    long HTML body is thousands of Python-level writes. Replacing every line end at once gives
    the same bytes (a ``sub`` is the split-and-join the stock code does; tests compare both).
    Only used with the SMTP policy: its line end is CRLF.
    """

    def _write_lines(self, lines: str) -> None:
        if not lines:
            return
        if "\r" in lines:
            self.write(_LINE_END.sub("\r\n", lines))
        else:
            self.write(lines.replace("\n", "\r\n"))


def flatten(body: EmailMessage) -> bytes:
    """``body.as_bytes(policy=SMTP)``, through ``_BulkGenerator``."""
    out = io.BytesIO()
    _BulkGenerator(out, mangle_from_=False, policy=POLICY).flatten(body)
    return out.getvalue()


@dataclass(frozen=True)
class Text:
    """One body: its subtype (plain, html) and its encoding as ``set_content`` chooses it."""

    subtype: str
    cte: str
    payload: str


def encode_text(value: str) -> tuple[str, str]:
    """``email.contentmanager``'s choice of transfer encoding for ``set_content(value)`` (UTF-8,
    the SMTP policy), and the payload it sets: 7bit or 8bit when every line fits, else the shorter
    of quoted-printable and base64 over the first ten lines."""
    lines = value.encode("utf-8").splitlines()
    normal = b"\n".join(lines) + b"\n"
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        try:
            return "7bit", normal.decode("ascii")
        except UnicodeDecodeError:
            return "8bit", normal.decode("ascii", "surrogateescape")
    sniff = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_qp = body_encode(sniff.decode("latin-1"), MAX_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        embedded = b"\r\n".join(lines) + b"\r\n"
        encoded = [binascii.b2a_base64(embedded[i : i + 57]) for i in range(0, len(embedded), 57)]
        return "base64", b"".join(encoded).decode("ascii")
    if len(lines) <= 10:
        return "quoted-printable", sniff_qp
    return "quoted-printable", body_encode(normal.decode("latin-1"), MAX_LINE)


def base64_lines(data: bytes) -> str:
    """Base64 in lines of 76 characters, each ending in LF: what ``add_attachment`` puts in a
    part under the SMTP policy (57 bytes a line), from one C call instead of one a line."""
    return base64_crlf(data).replace(b"\r\n", b"\n").decode("ascii")


def base64_crlf(data: bytes) -> bytes:
    """``base64_lines(data)`` as flattened: CRLF line ends, bytes. Encoded ``_ROWS`` lines at
    a time and cut into lines by one ``struct`` call: a slice a line in Python took twice as long
    as the encoding itself."""
    lines: list[bytes] = []
    view = memoryview(data)
    step = 57 * _ROWS
    whole = len(data) // step * step
    for start in range(0, whole, step):
        lines += _ROW_BLOCK.unpack(binascii.b2a_base64(view[start : start + step], newline=False))
    rest = binascii.b2a_base64(view[whole:], newline=False)
    lines += (rest[i : i + 76] for i in range(0, len(rest), 76))
    return b"\r\n".join(lines) + b"\r\n" if lines else b""


def base64_size(size: int) -> int:
    """``len(base64_crlf(data))`` for ``size`` bytes of data."""
    chars = (size + 2) // 3 * 4
    return chars + (chars + 75) // 76 * 2


def transport_head(headers: str) -> bytes:
    """The PST's transport headers as the message's head: up to the first empty line, CRLF,
    without their Content-* and MIME-Version fields (the body's own are written under them)."""
    lines: list[str] = []
    skipping = False
    for line in headers.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            break
        if line[:1] in (" ", "\t"):
            if not skipping:
                lines.append(line)
            continue
        skipping = line.lower().startswith(_CONTENT_FIELDS)
        if not skipping:
            lines.append(line)
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace")


def attachment_headers(maintype: str, subtype: str, name: str) -> bytes | None:
    """The header block ``add_attachment(b"", maintype=, subtype=, filename=name)`` gives a part
    (CRLF, flattened), or None where the email package would fold, encode or requote it."""
    if not (_TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)):
        return None
    if not _PLAIN_NAME.fullmatch(name):
        return None
    ctype = f"Content-Type: {maintype}/{subtype}"
    disposition = f'Content-Disposition: attachment; filename="{quote(name)}"'
    if max(len(ctype), len(disposition)) > MAX_LINE:
        return None
    return (
        f"{ctype}\r\nContent-Transfer-Encoding: base64\r\n{disposition}\r\nMIME-Version: 1.0\r\n"
    ).encode("ascii")


def flat_body(texts: Sequence[Text], headers: Sequence[bytes], seed: str, marker: bytes) -> bytes:
    """The flattened body (``pstmail.flatten``'s bytes) with each attachment's payload the
    ``marker`` line; ``texts`` as ``_mime_body`` adds them (none: an empty plain body)."""
    if not texts:
        texts = [Text("plain", *encode_text(""))]
    shape = (tuple((t.subtype, t.cte) for t in texts), len(headers))
    template = _TEMPLATES.get(shape)
    if template is None:
        template = _make_template(texts, len(headers))
        if len(_TEMPLATES) < _TEMPLATE_LIMIT:
            _TEMPLATES[shape] = template
    pieces, slots = template
    out = [pieces[0]]
    for slot, piece in zip(slots, pieces[1:], strict=True):
        if slot.startswith(b"\r\n"):  # an attachment: its headers, the blank line, the marker
            out += (headers[int(slot[25:-2])], b"\r\n", marker)
        elif slot.startswith(b"="):
            out.append(_flat_text(texts[int(slot[17:])].payload))
        else:
            out.append(seed.encode("ascii"))
        out.append(piece)
    return b"".join(out)


def _flat_text(payload: str) -> bytes:
    """A text part's payload as the generator writes it (``pstmail._BulkGenerator``)."""
    flat = _LINE_END.sub("\r\n", payload) if "\r" in payload else payload.replace("\n", "\r\n")
    return flat.encode("ascii", "surrogateescape")


def _make_template(
    texts: Sequence[Text], attachments: int
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The shape flattened by the email package, split at its slots: the seed, each text's
    payload, each attachment's header block and payload (a part with no headers)."""
    body = EmailMessage(policy=POLICY)
    first, *rest = texts
    body.set_content(_TEXT.format(0), subtype=first.subtype, cte=first.cte)
    for n, more in enumerate(rest, start=1):
        body.add_alternative(_TEXT.format(n), subtype=more.subtype, cte=more.cte)
    for n, part in enumerate(p for p in body.walk() if not p.is_multipart()):
        part.set_payload(_TEXT.format(n))
    for n in range(attachments):
        body.add_attachment(b"", maintype="application", subtype="octet-stream")
        part = cast("list[EmailMessage]", body.get_payload())[-1]
        for name in part.keys():  # noqa: SIM118 - the header block is put in per message
            del part[name]
        part.set_payload(f"{_ATTACHMENT.format(n)}\n")
    for n, part in enumerate(body.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_mailferry_{SEED}_{n}")
    split = _SLOT.split(flatten(body))
    return tuple(split[0::2]), tuple(split[1::2])
