"""Normalised comparison of two vCards (3.0 or 4.0), for ``verify``; see ``normalise``.

PRODID and REV are ignored (servers rewrite them), so are property order and folding; group prefixes
(``item1.EMAIL``) compare without case; a PHOTO is compared by its decoded bytes, whether inline base64
(3.0: ``ENCODING=b``) or a ``data:`` URI (4.0).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from typing import Any

import vobject

IGNORED = frozenset({"PRODID", "REV"})
IGNORED_PARAMS = frozenset({"ENCODING", "VALUE"})
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
    found = [
        f"{label}: {_show(line)} is only on the source"
        for line in sorted((mine - theirs).elements())
    ]
    found += [
        f"{label}: {_show(line)} is only on the target"
        for line in sorted((theirs - mine).elements())
    ]
    return found


def _parse(raw: bytes, side: str) -> tuple[list[Line], str | None]:
    try:
        card = vobject.readOne(raw.decode("utf-8", "replace"))
        return [
            _line(child) for child in card.getChildren() if child.name.upper() not in IGNORED
        ], None
    except (vobject.base.ParseError, ValueError, binascii.Error) as error:
        return [], f"the {side} is not a valid vCard ({error})"


def _line(child: Any) -> Line:
    name = child.name.upper()
    params = tuple(
        sorted(
            (
                key.upper(),
                ",".join(
                    sorted(str(v).upper() if key.upper() == "TYPE" else str(v) for v in values)
                ),
            )
            for key, values in child.params.items()
            if key.upper() not in IGNORED_PARAMS
        )
    )
    return ((child.group or "").lower(), name, params, _value(name, child.value))


def _value(name: str, value: Any) -> str:
    if isinstance(value, bytes):
        return _photo(value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    text = str(value)
    if name in {"PHOTO", "LOGO", "SOUND"} and text.startswith("data:") and ";base64," in text:
        return _photo(base64.b64decode(text.split(";base64,", 1)[1]))
    return text


def _photo(data: bytes) -> str:
    return f"{len(data)} bytes, SHA-256 {hashlib.sha256(data).hexdigest()[:16]}"


def _show(line: Line) -> str:
    group, name, params, value = line
    prefix = f"{group}." if group else ""
    shown = value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…"
    detail = ";".join(f"{k}={v}" for k, v in params)
    return f"{prefix}{name} '{shown}'" + (f" ({detail})" if detail else "")
