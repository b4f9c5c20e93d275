"""Normalised comparison of two vCards (3.0 or 4.0), for ``verify``; see ``normalise``.

PRODID and REV are ignored (servers rewrite them), so are property order and folding; group prefixes
(``item1.EMAIL``) and TYPE values compare without case; a PHOTO, LOGO, SOUND or KEY is compared by its
decoded bytes, whether inline base64 (3.0: ``ENCODING=b``) or a ``data:`` URI (4.0).

The lines are read with ``contentlines``, not vobject: vobject 0.9.9 drops everything after the comma of
a vCard 4.0 ``PHOTO:data:image/png;base64,...`` value, which would make two different photos equal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter

from mailferry.domain.contentlines import Parameter, content_lines, parse_property

IGNORED = frozenset({"PRODID", "REV"})
IGNORED_PARAMS = frozenset({"ENCODING", "VALUE"})
BINARY = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})
_SHOWN = 60

Line = tuple[str, str, tuple[tuple[str, str], ...], str]  # group, name, parameters, value


def vcard_differences(source: bytes, target: bytes) -> list[str]:
    left, problem = _parse(source, "source")
    if problem:
        return [problem]
    right, problem = _parse(target, "target")
    if problem:
        return [problem]
    name = next((line[3] for line in left if line[1] == "FN"), "")
    label = f"contact '{name}'" if name else "the contact"
    mine, theirs = Counter(left), Counter(right)
    only_source = sorted((mine - theirs).elements())
    only_target = sorted((theirs - mine).elements())
    found = [f"{label}: {_show(line)} is only on the source" for line in only_source]
    found += [f"{label}: {_show(line)} is only on the target" for line in only_target]
    return found


def _parse(raw: bytes, side: str) -> tuple[list[Line], str | None]:
    texts = [c.unfolded for c in content_lines(raw) if c.unfolded.strip()]
    if not texts or texts[0].upper() != b"BEGIN:VCARD" or texts[-1].upper() != b"END:VCARD":
        return [], f"the {side} is not a valid vCard (no BEGIN:VCARD ... END:VCARD)"
    lines = []
    for number, text in enumerate(texts[1:-1], start=2):
        prop = parse_property(text)
        if prop is None:
            return [], f"the {side} is not a valid vCard (line {number} cannot be read)"
        group, _, name = prop.name.decode("utf-8", "replace").rpartition(".")
        if name.upper() in IGNORED:
            continue
        params = tuple(sorted(p for p in map(_param, prop.params) if p[0] not in IGNORED_PARAMS))
        encoded = any(_param(p) in {("ENCODING", "B"), ("ENCODING", "BASE64")} for p in prop.params)
        value = _value(name.upper(), prop.value, base64_encoded=encoded)
        lines.append((group.lower(), name.upper(), params, value))
    return lines, None


def _param(param: Parameter) -> tuple[str, str]:
    name = param.name.decode("utf-8", "replace")
    _, _, values = param.text.decode("utf-8", "replace").partition("=")
    if name in {"TYPE", "ENCODING"}:
        values = ",".join(sorted(v.strip('"').upper() for v in values.split(",")))
    return name, values


def _value(name: str, value: bytes, *, base64_encoded: bool) -> str:
    text = value.decode("utf-8", "replace")
    if name not in BINARY:
        return text
    try:
        if base64_encoded:
            return _binary(base64.b64decode("".join(text.split()), validate=True))
        if text.startswith("data:") and ";base64," in text:
            return _binary(base64.b64decode(text.split(";base64,", 1)[1], validate=True))
    except binascii.Error:
        return f"{text} (invalid base64)"
    return text


def _binary(data: bytes) -> str:
    return f"{len(data)} bytes, SHA-256 {hashlib.sha256(data).hexdigest()[:16]}"


def _show(line: Line) -> str:
    group, name, params, value = line
    prefix = f"{group}." if group else ""
    shown = value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…"
    detail = ";".join(f"{k}={v}" for k, v in params)
    return f"{prefix}{name} '{shown}'" + (f" ({detail})" if detail else "")
