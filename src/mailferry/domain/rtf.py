"""The text of an RTF body (PidTagRtfCompressed, as libpff hands it out decompressed), for items
that keep no other body: Outlook's "Rich Text" mail, and contacts, tasks and appointments whose
notes an Exchange or Outlook.com OST keeps only so.

``read`` recognises the two encapsulations of [MS-OXRTFEX] 2.2.3.1 in the header:
- ``\\fromhtml1``: the original HTML comes back (section 2.3: the content of each
  ``{\\*\\htmltag}`` group, and the text between them that is not inside
  ``\\htmlrtf ... \\htmlrtf0``, which is RTF's own rendering);
- ``\\fromtext``: the original plain text comes back the same way.
Any other RTF is rendered as plain text: its text runs, ``\\par`` and ``\\line`` as line breaks,
``\\tab``, the typographic symbols, ``\\'hh`` bytes in the code page of the selected font (from
the font table's ``\\fcharset``, else the header's ``\\ansicpg``), ``\\uN`` with its ``\\ucN``
fallback characters skipped; destinations (``{\\*\\...}``, font and colour tables, style sheet,
document information, pictures, objects) are not text. Formatting is not kept: the caller says so.

Pure and bounded: one pass over the document, a stack as deep as its groups.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # a control word, its parameter, its delimiting space
    r"|\\'([0-9a-fA-F]{2})"  # a byte in the current code page
    r"|\\([^a-zA-Z'])"  # a control symbol
    r"|([{}])"
    r"|([^\\{}\r\n\x00]+)"  # text
    r"|[\r\n\x00]+",  # line breaks in the file are not text, nor the NULs padding its end
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SKIPPED = frozenset(
    [
        "fonttbl",
        "colortbl",
        "stylesheet",
        "info",
        "pict",
        "object",
        "header",
        "footer",
        "headerl",
        "headerr",
        "headerf",
        "footerl",
        "footerr",
        "footerf",
        "footnote",
        "xmlnstbl",
        "listtable",
        "listoverridetable",
        "rsidtbl",
        "generator",
        "themedata",
        "colorschememapping",
        "datastore",
        "latentstyles",
        "pgdsctbl",
        "revtbl",
        "filetbl",
        "mmathPr",
    ]
)
_SYMBOLS = {
    "par": "\n",
    "line": "\n",
    "tab": "\t",
    "lquote": "\u2018",
    "rquote": "\u2019",
    "ldblquote": "\u201c",
    "rdblquote": "\u201d",
    "bullet": "\u2022",
    "endash": "\u2013",
    "emdash": "\u2014",
    "emspace": "\u2003",
    "enspace": "\u2002",
    "qmspace": "\u2005",
}
_CONTROL_SYMBOLS = {
    "~": "\u00a0",
    "_": "\u2011",
    "\\": "\\",
    "{": "{",
    "}": "}",
    "\n": "\n",  # a backslash before a line break is \par
    "\r": "\n",
}
# \fcharset -> Windows code page (the RTF specification's table of character sets)
_CHARSETS = {
    0: 1252,
    128: 932,
    129: 949,
    130: 1361,
    134: 936,
    136: 950,
    161: 1253,
    162: 1254,
    163: 1258,
    177: 1255,
    178: 1256,
    186: 1257,
    204: 1251,
    222: 874,
    238: 1250,
}


@dataclass(frozen=True)
class Body:
    kind: str  # "html" or "plain"
    text: str
    exact: bool  # the original, de-encapsulated; False: rendered from RTF, formatting lost


@dataclass
class _Group:
    skip: bool = False  # a destination that is not text
    tag: bool = False  # inside {\*\htmltag}: HTML to copy
    rtf_only: bool = False  # inside \htmlrtf ... \htmlrtf0
    font: int | None = None
    uc: int = 1  # fallback characters after a \uN
    fonts: bool = False  # inside the font table


@dataclass
class _Reader:
    encapsulated: bool = False  # \fromhtml or \fromtext: skip what \htmlrtf marks
    codepage: int = 1252
    fonts: dict[int, int] = field(default_factory=dict)  # font number -> code page
    out: list[str] = field(default_factory=list)
    pending: bytearray = field(default_factory=bytearray)  # \'hh bytes not yet decoded
    pending_codepage: int = 1252
    skip_chars: int = 0  # \uN fallback characters still to skip
    font_number: int | None = None  # the font table entry being read


def read(data: bytes, *, html: bool = True) -> Body:
    """The body ``data`` holds (an RTF document; bytes outside ASCII are read as Latin-1); with
    ``html=False`` encapsulated HTML is rendered as plain text (for a vCard's NOTE, ...)."""
    head = data[:1024]
    html = html and b"\\fromhtml" in head
    reader = _Reader(encapsulated=html or b"\\fromtext" in head)
    if found := re.search(rb"\\ansicpg(\d{1,5})", head):
        reader.codepage = int(found.group(1))
    stack = [_Group()]
    destination = False
    for match in _TOKEN.finditer(data.decode("latin-1")):
        destination = _step(reader, stack, match.groups(), after_star=destination, html=html)
    _flush(reader)
    body = _paired("".join(reader.out))
    if html:
        return Body("html", body, exact=True)
    if reader.encapsulated:
        return Body("plain", body, exact=True)
    return Body("plain", body.strip(), exact=False)  # a rendering: its edges are RTF's


def _step(
    reader: _Reader,
    stack: list[_Group],
    token: tuple[str | None, ...],
    *,
    after_star: bool,
    html: bool,
) -> bool:
    """One token read; True when it is the ``\\*`` that makes the next word a destination."""
    word, param, byte, symbol, brace, text = token
    group = stack[-1]
    if brace == "{":
        stack.append(
            _Group(group.skip, group.tag, group.rtf_only, group.font, group.uc, group.fonts)
        )
    elif brace == "}":
        _flush(reader)
        if len(stack) > 1:
            stack.pop()
    elif symbol == "*":
        return True
    elif word is not None:
        _word(reader, stack, word, param, first=after_star, html=html)
    elif byte is not None:
        _byte(reader, group, int(byte, 16))
    else:
        _text(reader, group, _CONTROL_SYMBOLS.get(symbol, "") if symbol is not None else text or "")
    return False


def _word(
    reader: _Reader, stack: list[_Group], word: str, param: str | None, *, first: bool, html: bool
) -> None:
    group = stack[-1]
    if first:  # {\*\word ...}: a destination; only an HTML tag is kept, and only when encapsulated
        if word == "htmltag" and html and not group.skip:
            group.tag = True
        else:
            group.skip = True
        return
    if word in _SKIPPED:
        group.skip = True
        group.fonts = word == "fonttbl"
        return
    number = int(param) if param is not None else None
    if group.fonts:
        _font_table(reader, word, number)
        return
    if word == "htmlrtf":
        _flush(reader)
        group.rtf_only = number != 0
    elif word == "f" and number is not None:
        _flush(reader)
        group.font = number
    elif word == "uc" and number is not None:
        group.uc = max(number, 0)
    elif word == "u" and number is not None:
        _flush(reader)
        _text(reader, group, chr(number % 65536), unicode=True)
        reader.skip_chars = group.uc
    elif word in _SYMBOLS:
        _text(reader, group, _SYMBOLS[word])


def _font_table(reader: _Reader, word: str, number: int | None) -> None:
    if word == "f" and number is not None:
        reader.font_number = number
    elif word == "fcharset" and number is not None and reader.font_number is not None:
        reader.fonts[reader.font_number] = _CHARSETS.get(number, reader.codepage)
    elif word == "cpg" and number is not None and reader.font_number is not None:
        reader.fonts[reader.font_number] = number


def _shown(reader: _Reader, group: _Group) -> bool:
    if group.skip:
        return False
    if group.tag:
        return True
    return not (reader.encapsulated and group.rtf_only)


def _byte(reader: _Reader, group: _Group, value: int) -> None:
    if reader.skip_chars:
        reader.skip_chars -= 1
        return
    if not _shown(reader, group):
        return
    codepage = reader.codepage if group.tag else reader.fonts.get(group.font or -1, reader.codepage)
    if reader.pending and codepage != reader.pending_codepage:
        _flush(reader)
    reader.pending_codepage = codepage
    reader.pending.append(value)


def _text(reader: _Reader, group: _Group, text: str, *, unicode: bool = False) -> None:
    if reader.skip_chars and not unicode:
        skipped = min(reader.skip_chars, len(text))
        reader.skip_chars -= skipped
        text = text[skipped:]
    if text and _shown(reader, group):
        _flush(reader)
        reader.out.append(text)


def _flush(reader: _Reader) -> None:
    """The \\'hh bytes read so far, decoded (a double-byte character spans two of them)."""
    if reader.pending:
        reader.out.append(bytes(reader.pending).decode(_codec(reader.pending_codepage), "replace"))
        reader.pending.clear()


def _paired(text: str) -> str:
    """Characters beyond U+FFFF, which RTF writes as two ``\\uN`` (a UTF-16 surrogate pair), as
    one; a surrogate without its other half becomes U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _codec(codepage: int) -> str:
    name = "utf-8" if codepage == 65001 else f"cp{codepage}"
    try:
        codecs.lookup(name)
    except LookupError:
        return "cp1252"
    return name
