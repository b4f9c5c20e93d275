"""The FAKE Graph's stand-in for Exchange's FastTransfer stream: what ``exportItems`` hands out and
an ``importUrl`` takes back (learn.microsoft.com/graph/import-exchange-mailbox-item: "Data that
represents an item in a base64 encoded FTS format").

Real streams are MS-OXCFXICS property streams a client must never parse; this one is the fake's
own encoding of (item class, props), behind a magic header and a digest, so that a target can
refuse data that no export made (a hand-made or damaged stream) as Exchange refuses a bad FTS.
Nothing outside the sandbox reads it: mailferry carries it as opaque bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAGIC = b"\x00MFFAKE-FTS\x01"
_DIGEST = 32


def encode_item(item_class: str, props: dict[str, Any]) -> bytes:
    """The stream of one item (uncompressed: its length is the item's size, as Exchange counts)."""
    payload = json.dumps({"class": item_class, "props": props}, sort_keys=True).encode()
    return MAGIC + hashlib.sha256(payload).digest() + payload


def decode_item(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """(item class, props) of a stream made by ``encode_item``; None for anything else."""
    if not data.startswith(MAGIC):
        return None
    digest = data[len(MAGIC) : len(MAGIC) + _DIGEST]
    payload = data[len(MAGIC) + _DIGEST :]
    if hashlib.sha256(payload).digest() != digest:
        return None
    try:
        decoded = json.loads(payload)
    except ValueError:
        return None
    item_class, props = decoded.get("class"), decoded.get("props")
    if not isinstance(item_class, str) or not isinstance(props, dict):
        return None
    return item_class, props
