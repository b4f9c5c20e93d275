"""An independent view of a mailbox for assertions: plain imapclient, no mailferry code."""

from __future__ import annotations

import hashlib
from collections import Counter

import imapclient

Print = tuple[str, int, frozenset[str]]


def login(host: str, port: int, user: str, password: str) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient(host, port=port, ssl=False)
    client.normalise_times = False
    client.login(user, password)
    return client


def _flags(raw) -> frozenset[str]:
    out = set()
    for f in raw:
        text = f.decode() if isinstance(f, bytes) else str(f)
        if text.lower() != "\\recent":
            out.add(text)
    return frozenset(out)


def snapshot(
    client: imapclient.IMAPClient, *, skip_deleted: bool = False
) -> dict[str, Counter[Print]]:
    """folder name -> multiset of (sha256 of BODY[], INTERNALDATE epoch, flags without \\Recent)."""
    result: dict[str, Counter[Print]] = {}
    for flags, _delim, name in client.list_folders():
        if any(f.lower() in (b"\\noselect", b"\\nonexistent") for f in flags):
            continue
        client.select_folder(name, readonly=True)
        uids = client.search("ALL")
        prints: Counter[Print] = Counter()
        for uid in uids:  # one at a time: simple, and a 30 MB body is fine here
            row = client.fetch([uid], ["FLAGS", "INTERNALDATE", "BODY.PEEK[]"])[uid]
            fl = _flags(row[b"FLAGS"])
            if skip_deleted and "\\Deleted" in fl:
                continue
            fl = frozenset(f for f in fl if f != "\\Deleted")
            digest = hashlib.sha256(row[b"BODY[]"]).hexdigest()
            prints[(digest, int(row[b"INTERNALDATE"].timestamp()), fl)] += 1
        result[name] = prints
    return result


def subscribed(client: imapclient.IMAPClient) -> set[str]:
    return {name for _f, _d, name in client.list_sub_folders()}
