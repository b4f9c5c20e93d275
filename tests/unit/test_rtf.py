"""An RTF body read as text (domain/rtf.py): the HTML or plain text Outlook encapsulated in it
([MS-OXRTFEX]) comes back as it was; other RTF is rendered as plain text with its code pages,
Unicode escapes and destinations handled; any text written as RTF reads back the same."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from mailferry.domain import rtf

HTML = (
    rb"{\rtf1\ansi\ansicpg1252\fromhtml1 \deff0{\fonttbl{\f0\fswiss Arial;}}"
    rb"{\*\htmltag19 <html>}{\*\htmltag34 <head>}{\*\htmltag41 </head>}"
    rb"{\*\htmltag50 <body>}\htmlrtf {\htmlrtf0 "
    rb"{\*\htmltag64 <p>}\htmlrtf {\htmlrtf0 Caf\'e9 {\*\htmltag84 <b>}bold\htmlrtf\b\htmlrtf0"
    rb"{\*\htmltag92 </b>}\htmlrtf\b0\htmlrtf0  \{x\}"
    rb"\htmlrtf\par\htmlrtf0 {\*\htmltag72 </p>}\par"
    rb"{\*\htmltag58 </body>}{\*\htmltag27 </html>}}}\x00\x00"
)


def test_encapsulated_html_comes_back_as_it_was_written():
    body = rtf.read(HTML)
    assert (body.kind, body.exact) == ("html", True)
    assert body.text == (
        "<html><head></head><body><p>Caf\u00e9 <b>bold</b> {x}</p>\n</body></html>"
    )


def test_encapsulated_html_rendered_as_text_for_a_note_keeps_rtfs_rendering_not_the_tags():
    body = rtf.read(HTML, html=False)
    assert (body.kind, body.exact) == ("plain", False)
    assert body.text == "Caf\u00e9 bold {x}"


def test_encapsulated_plain_text_comes_back_without_rtfs_own_parts():
    data = (
        rb"{\rtf1\ansi\ansicpg1252\fromtext \deff0{\fonttbl{\f0\fmodern Courier New;}}"
        rb"\htmlrtf{\f0\htmlrtf0 first line\par second\tab tabbed\par\htmlrtf [rtf only]}"
        rb"\htmlrtf0}"
    )
    assert rtf.read(data) == rtf.Body("plain", "first line\nsecond\ttabbed\n", exact=True)


def test_a_fonts_character_set_decodes_its_bytes_and_unicode_escapes_skip_their_fallback():
    data = (
        rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\froman\fcharset0 Times;}"
        rb"{\f1\fswiss\fcharset204 Arial;}{\f2\fnil\fcharset128 MS Gothic;}}"
        rb"{\colortbl;\red0\green0\blue0;}{\*\generator Riched20;}{\info{\author Ed}}"
        rb"\f0 na\'efve \f1\'cf\'f0\'e8\'e2\'e5\'f2 \f2\'82\'a0 \uc1\u8364?\u-3998?"
        rb" \lquote q\rquote\~\emdash\par{\pict\pngblip 89504e47}end}"
    )
    body = rtf.read(data)
    assert body == rtf.Body(
        "plain",
        "na\u00efve \u041f\u0440\u0438\u0432\u0435\u0442 \u3042 \u20ac\uf062 "
        "\u2018q\u2019\u00a0\u2014\nend",
        exact=False,
    )


def test_fields_keep_their_result_and_unknown_destinations_are_not_text():
    data = (
        rb"{\rtf1\ansi{\field{\*\fldinst HYPERLINK \"http://x.example\"}{\fldrslt the link}}"
        rb"{\*\unknowndest secret}{\*\mhtmltag84 <a>} and more}"
    )
    assert rtf.read(data).text == "the link and more"


def test_broken_rtf_reads_what_it_can():
    assert rtf.read(b"{\\rtf1 unbalanced {group\\par").text == "unbalanced group"
    assert rtf.read(b"}}}{\\rtf1 extra closing}").text == "extra closing"
    assert rtf.read(b"").text == ""


def encode(text: str) -> bytes:
    """``text`` written as an RTF document: specials escaped, line breaks as \\par, the rest of
    Unicode as \\uN with a fallback character (two for a character beyond U+FFFF)."""
    out = []
    for char in text:
        if char in "\\{}":
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\par ")
        elif " " <= char <= "~":
            out.append(char)
        else:
            units = char.encode("utf-16-le")  # beyond U+FFFF: a surrogate pair, two \\uN
            for (code,) in struct.iter_unpack("<H", units):
                out.append(f"\\u{code - 65536 if code > 32767 else code}?")
    return ("{\\rtf1\\ansi\\ansicpg1252\\uc1 " + "".join(out) + "}").encode("ascii")


TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from("\n\\{}?"),
    max_size=200,
)


@given(TEXT)
def test_any_text_written_as_rtf_reads_back_the_same(text):
    assert rtf.read(encode(text)).text == text.strip()


@given(
    st.binary(max_size=400)
    | st.text(alphabet="{}\\'abcdefu0123456789-* \n", max_size=200).map(str.encode)
)
def test_any_bytes_read_without_an_error(data):
    """A damaged PST hands out damaged RTF: it is read as far as it goes, never raised on."""
    body = rtf.read(b"{\\rtf1\\ansi\\ansicpg1252 " + data)
    body.text.encode("utf-8")  # no lone surrogate: a vCard or a message can hold it
    assert rtf.read(data, html=False).kind == "plain"


def test_a_surrogate_pair_is_one_character_and_a_lone_half_is_replaced():
    emoji = rb"{\rtf1\ansi\uc1 a\u-10179?\u-8704?b \u-10179?c}"  # U+1F600, then half of one
    assert rtf.read(emoji).text == "a\U0001f600b \ufffdc"
