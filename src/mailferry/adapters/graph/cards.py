"""A vCard (RFC 2426 / RFC 6350) <-> a Graph contact (learn.microsoft.com/graph/api/resources/contact).

Converted: FN (displayName), N (surname, givenName, middleName, title, generation), EMAIL
(emailAddresses, at most 3 in Outlook), TEL (homePhones, businessPhones, mobilePhone by TYPE),
ORG (companyName, department), TITLE (jobTitle), NOTE (personalNotes), CATEGORIES (categories),
NICKNAME, BDAY (birthday). The rest of the card (photo, addresses, groups' members, X- properties)
travels in our extended property (collections.py) and comes back with the card.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mailferry.adapters.graph.recurrence import Unsupported
from mailferry.domain.contentlines import content_lines, parse_property

OUTLOOK_EMAILS = 3
Card = dict[str, list[tuple[set[str], str]]]  # NAME -> (TYPE values, value) in order


def parse_card(data: bytes) -> Card:
    """The card's properties (group prefixes dropped), read with ``contentlines``."""
    card: Card = {}
    for line in content_lines(data):
        prop = parse_property(line.unfolded)
        if prop is None:
            continue
        name = prop.name.decode("utf-8", "replace").upper().rsplit(".", 1)[-1]
        types: set[str] = set()
        for param in prop.params:
            if param.name == b"TYPE":
                text = param.text.split(b"=", 1)[-1].decode("utf-8", "replace")
                types |= {t.strip('"').lower() for t in text.split(",")}
            elif b"=" not in param.text:  # vCard 2.1 style ";CELL"
                types.add(param.name.decode().lower())
        card.setdefault(name, []).append((types, prop.value.decode("utf-8", "replace")))
    if "BEGIN" not in card or ("FN" not in card and "N" not in card):
        raise Unsupported("not a vCard")
    return card


def _split(value: str, sep: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += {"n": "\n", "N": "\n"}.get(char, char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _text(value: str) -> str:
    return _split(value, "\x00")[0]


def plan_contact(data: bytes) -> tuple[str | None, dict[str, Any]]:
    """The UID and the contact's JSON."""
    card = parse_card(data)
    out: dict[str, Any] = {"displayName": _first(card, "FN") or ""}
    if "N" in card:
        name = [*_split(card["N"][0][1], ";"), "", "", "", "", ""]
        out.update(
            surname=name[0] or None,
            givenName=name[1] or None,
            middleName=name[2] or None,
            title=name[3] or None,
            generation=name[4] or None,
        )
    emails = [_text(v).removeprefix("mailto:") for _, v in card.get("EMAIL", [])]
    out["emailAddresses"] = [{"address": e, "name": e} for e in emails[:OUTLOOK_EMAILS]]
    home, business, mobile = [], [], None
    for types, value in card.get("TEL", []):
        number = _text(value).removeprefix("tel:")
        if "cell" in types and mobile is None:
            mobile = number
        elif "home" in types:
            home.append(number)
        else:
            business.append(number)
    out.update(homePhones=home, businessPhones=business, mobilePhone=mobile)
    if "ORG" in card:
        org = _split(card["ORG"][0][1], ";")
        out["companyName"] = org[0] or None
        out["department"] = org[1] if len(org) > 1 and org[1] else None
    out["jobTitle"] = _first(card, "TITLE")
    out["personalNotes"] = _first(card, "NOTE") or ""
    out["nickName"] = _first(card, "NICKNAME")
    out["categories"] = [c for _, v in card.get("CATEGORIES", []) for c in _split(v, ",") if c]
    return _first(card, "UID"), {k: v for k, v in out.items() if v is not None}


def _first(card: Card, name: str) -> str | None:
    values = card.get(name)
    return _text(values[0][1]) if values else None


SHOWN = ("displayName", "givenName", "surname", "middleName", "title", "generation", "companyName",
         "department", "jobTitle", "personalNotes", "nickName", "mobilePhone")  # fmt: skip


def fingerprint(contact: dict[str, Any]) -> str:
    shape = [contact.get(name) or "" for name in SHOWN]
    shape.append(sorted(e.get("address", "") for e in contact.get("emailAddresses") or []))
    shape += [sorted(contact.get(n) or []) for n in ("homePhones", "businessPhones", "categories")]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()


def render_contact(contact: dict[str, Any], uid: str, version: str = "3.0") -> bytes:
    """A vCard of ``version`` (3.0 unless the address book keeps 4.0) from the contact's JSON."""
    lines = ["BEGIN:VCARD", f"VERSION:{version}", f"UID:{_escape(uid)}"]
    lines.append("FN:" + _escape(contact.get("displayName") or ""))
    parts = [contact.get(n) or "" for n in ("surname", "givenName", "middleName", "title", "generation")]  # fmt: skip
    lines.append("N:" + ";".join(_escape(p) for p in parts))
    lines += [f"EMAIL;TYPE=INTERNET:{e['address']}" for e in contact.get("emailAddresses") or []]
    lines += [f"TEL;TYPE=HOME:{t}" for t in contact.get("homePhones") or []]
    lines += [f"TEL;TYPE=WORK:{t}" for t in contact.get("businessPhones") or []]
    if contact.get("mobilePhone"):
        lines.append(f"TEL;TYPE=CELL:{contact['mobilePhone']}")
    if contact.get("companyName") or contact.get("department"):
        company = _escape(contact.get("companyName") or "")
        lines.append(f"ORG:{company};{_escape(contact.get('department') or '')}")
    for name, prop in (("jobTitle", "TITLE"), ("personalNotes", "NOTE"), ("nickName", "NICKNAME")):
        if contact.get(name):
            lines.append(f"{prop}:{_escape(contact[name])}")
    if contact.get("categories"):
        lines.append("CATEGORIES:" + ",".join(_escape(c) for c in contact["categories"]))
    lines.append("END:VCARD")
    return ("\r\n".join(lines) + "\r\n").encode()


def _escape(text: str) -> str:
    return (
        str(text).replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
    )


MODELED = frozenset({"BEGIN", "END", "VERSION", "UID", "FN", "N", "EMAIL", "TEL", "ORG", "TITLE",
                     "NOTE", "NICKNAME", "CATEGORIES", "PRODID", "REV"})  # fmt: skip


def with_residue(rendered: bytes, original: bytes | None) -> bytes:
    """``rendered`` plus the lines of ``original`` Graph does not hold (photo, addresses, ...)."""
    if not original:
        return rendered
    kept = []
    for line in content_lines(original):
        prop = parse_property(line.unfolded)
        name = b"" if prop is None else prop.name.upper().rsplit(b".", 1)[-1]
        if prop is not None and name.decode("utf-8", "replace") not in MODELED:
            kept.append(line.unfolded + b"\r\n")
    head, _, _ = rendered.rpartition(b"END:VCARD")
    return head + b"".join(kept) + b"END:VCARD\r\n"


def version_of(original: bytes | None) -> str:
    return "4.0" if original and b"VERSION:4.0" in original else "3.0"
