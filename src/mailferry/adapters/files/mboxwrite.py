"""Writing mbox files: a message as an mbox keeps it, and flag changes written back.

A file target appends ``From MAILER-DAEMON <date>`` (the message's date, UTC), the flag fields
(``Status``, ``X-Status``, ``X-Keywords``: the ones ``mboxfile`` reads and takes out again), the
message with ``From `` lines quoted the mboxrd way, and an empty line. A message that does not end
in a line end gets one: mbox cannot keep that (Maildir can).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from mailferry.adapters.files import rfc822
from mailferry.adapters.files.mboxfile import Scanned, without_hidden

_NEEDS_QUOTE = re.compile(rb"^>*From ", re.MULTILINE)


def flag_fields(flags: frozenset[str]) -> bytes:
    """The ``Status``/``X-Status``/``X-Keywords`` fields a file target writes for ``flags``."""
    out = b""
    if "\\Seen" in flags:
        out += b"Status: RO\n"
    letters = "".join(c for c, flag in rfc822.X_STATUS_LETTERS.items() if flag in flags)
    if letters:
        out += f"X-Status: {letters}\n".encode()
    words = sorted(f for f in flags if not f.startswith("\\") and f.isascii())
    if words:
        out += ("X-Keywords: " + " ".join(words) + "\n").encode()
    return out


def mbox_entry(message: bytes, flags: frozenset[str], when: dt.datetime) -> bytes:
    """A message as an mbox file keeps it: separator line, flag fields, mboxrd quoting, blank line."""
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(when.timestamp()))
    body = _NEEDS_QUOTE.sub(lambda m: b">" + m.group(0), message)
    if not body.endswith(b"\n"):
        body += b"\n"
    return b"From MAILER-DAEMON " + stamp.encode() + b"\n" + flag_fields(flags) + body + b"\n"


def rewrite_flags(path: Path, scanned: Scanned, new_flags: Callable[[int], frozenset[str]]) -> None:
    """Write the file again with each message's flag fields from ``new_flags(index)`` (a copy
    renamed over the original: a crash leaves the old file or the new one, never half of each)."""
    temporary = path.with_name(path.name + ".mailferry-tmp")
    with path.open("rb") as source, temporary.open("wb") as out:
        for index in range(len(scanned.starts)):
            start, end = scanned.starts[index], scanned.ends[index]
            out.write(_from_line(source, start))
            out.write(flag_fields(new_flags(index)))
            source.seek(start)
            out.write(without_hidden(source.read(end - start)))
            out.write(b"\n")
        out.flush()
    temporary.replace(path)


def _from_line(source: BinaryIO, start: int) -> bytes:
    """The separator line that ends just before ``start``."""
    source.seek(max(0, start - 4096))
    before = source.read(start - max(0, start - 4096))
    return before[before.rfind(b"\n", 0, len(before) - 1) + 1 :]
