"""What the file sources hand out, pinned byte for byte on awkward files, so that making the
scans and the reads faster cannot change a single byte, size, flag or date.

The files are generated (a fixed seed) with everything the reader treats specially: LF and CRLF
line ends mixed, hidden flag fields with continuation lines, ``>From `` quoting in the header and
the body, ``From `` lines that are no separator, Dovecot's Content-Length bodies, undated From
lines, messages that end without an empty line, Takeout labels. The digest of all that the
listing gives was taken with the line-by-line reader this replaced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import random
from pathlib import Path

import pytest

from mailferry.adapters.files import MaildirAccount, MboxAccount, mboxfile, mboxhash
from mailferry.adapters.files.mboxfile import from_line_date
from mailferry.domain.errors import MessageError
from mailferry.domain.model import AppendRequest

HEADERS = [
    b"Subject: s",
    b"To: a@example.com",
    b"Status: RO",
    b"Status: O",
    b"X-Status: AF",
    b"X-Status: T",
    b"X-Keywords: $Label1 Work",
    b"X-Keywords: one,\n two",
    b"X-UID: 7",
    b"X-IMAPbase: 1 2",
    b"X-Mozilla-Status: 0005",
    b'X-Gmail-Labels: Inbox,Work,"A, B"',
    b"Date: Tue, 02 Jan 2001 03:04:05 +0200",
    b"Message-ID: <m@example.com>",
    b"Received: from x\n\tby y; Tue, 02 Jan 2001 03:04:05 +0000",
    b">From quoted in the header",
    b"x-status:D",
]
BODY = [
    b"plain text",
    b"",
    b">From once",
    b">>From twice",
    b"From not a separator",
    b"ends in cr\r",
    b"tab\tand spaces  ",
    b"x" * 300,
]
SEPARATORS = [
    b"From a@example.com Tue Jan  2 03:04:05 2001",
    b"From b@example.com Wed Feb 14 23:59:00 2024",
    b"From MAILER-DAEMON Thu Mar  7 10:00 2002",
    b"From c@example.com Sat, 03 Mar 2001 04:05:06",  # no asctime: dated from Date:
    b"From d@example.com Mon Apr  1 12:00:00 +0100 2019",
]


def _message(rng: random.Random, end: bytes, headers: list[bytes]) -> bytes:
    head = [rng.choice(headers) for _ in range(rng.randint(0, 6))]
    body = [rng.choice(BODY) for _ in range(rng.randint(0, 12))]
    raw = end.join(head) + (end if head else b"") + end + end.join(body)
    if rng.random() < 0.15:  # Dovecot's own: a counted body, From lines left as they are
        content = end.join([*body, b"From counted"]) + end
        return end.join([*head, b"Content-Length: %d" % len(content), b""]) + end + content
    return raw + (end if body else b"")


def generated(seed: int, count: int, *, takeout: bool) -> bytes:
    rng = random.Random(seed)
    headers = HEADERS if takeout else [h for h in HEADERS if b"Gmail" not in h]
    out = []
    for _ in range(count):
        end = b"\r\n" if rng.random() < 0.3 else b"\n"
        out.append(rng.choice(SEPARATORS) + end + _message(rng, end, headers))
        if rng.random() < 0.9:
            out.append(end)  # the usual empty line before the next separator
    return b"".join(out)


def listing_digest(path: Path) -> str:
    """Everything the account hands out for the file at ``path``, hashed."""
    account = MboxAccount(path)
    digest = hashlib.sha256()
    for folder in [f.name for f in account.list_folders() if "\\Noselect" not in f.flags]:
        metas = list(account.fetch_meta(folder, message_ids=True))
        fetched = list(account.fetch_messages(folder, metas))
        for meta, message in zip(metas, fetched, strict=True):
            if isinstance(message, MessageError):  # a cut-off last message
                body = message.reason.replace(str(path), "FILE").encode()
            else:
                body = message.body.read()
            # The size planned with is the size handed out (the line-by-line scan differed from
            # its read on a ">From " header line of a counted message).
            assert isinstance(message, MessageError) or meta.size == len(body)
            digest.update(repr((folder, meta.uid, sorted(meta.flags), len(body))).encode())
            digest.update(repr((meta.internaldate.isoformat(), meta.message_id)).encode())
            digest.update(hashlib.sha256(body).digest())
        digest.update(repr(sorted(account.notes(folder, [m.uid for m in metas]).items())).encode())
    return digest.hexdigest()


PINNED = {
    (1, True): "35ac76bb1bf76409ad35c39fb38bb58e3800aa1cb66f3104e3482b3377d3623c",
    (2, True): "8a5911a9b25810a219511e45bf1959a19149ce2ab7fa6b5c03beefa78a9f9d36",
    (3, False): "1fabcf2e0cec4adefe1ce922dbb73da57b4ee9dce97a0d6935375eedb1d58ef8",
    (4, False): "489060aaa267a9c4a6cf2d010c717161236037944111bbb21c2ff38acf67df05",
    (5, False): "5afde6ac0faf7bf6b864a8ab80d17ca3050eeebf11f87f3efb508714bdb518b7",
}


def test_awkward_mbox_files_read_exactly_as_pinned(tmp_path):
    got = {}
    for seed, takeout in PINNED:
        path = tmp_path / f"{seed}.mbox"
        path.write_bytes(generated(seed, 120, takeout=takeout))
        os.utime(path, (1_000_000_000, 1_000_000_000))  # the date of messages without one
        got[seed, takeout] = listing_digest(path)
    assert got == PINNED


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"From a@x Tue Jan  2 03:04:05 2001\n", dt.datetime(2001, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        (
            b"From a@x Sun Dec 31 23:59:59 2023\r\n",
            dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        ),
        (b"From a@x tue jan  2 03:04:05 2001\n", dt.datetime(2001, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        (b"From a@x Tue Feb 30 03:04:05 2001\n", None),
        (b"From a@x Tue Jan  2 24:04:05 2001\n", None),
        (b"From a@x Tue Jan  0 03:04:05 2001\n", None),
        (b"From a@x Tue Jan  2 03:04 2001\n", dt.datetime(2001, 1, 2, 3, 4, tzinfo=dt.UTC)),
        (b"From a@x Sat, 03 Mar 2001 04:05:06\n", None),
    ],
)
def test_from_line_dates_read_without_strptime_agree_with_it(line, expected):
    assert from_line_date(line) == expected


def test_maildir_files_are_handed_out_with_crlf_and_ours_as_they_are(tmp_path):
    target = MaildirAccount(tmp_path / "md", writable=True)
    crlf, bare = b"Subject: a\r\n\r\nbody\r\n", b"Subject: b\n\nbody\n"
    target.append_batch("INBOX", [_request(1, crlf)])  # W= equal to the file size
    cur = tmp_path / "md" / "cur"
    (cur / f"1.M1P1.host,S={len(bare)},W={len(bare) + 3}:2,").write_bytes(bare)  # Dovecot's
    (cur / "2.M1P1.host:2,S").write_bytes(bare)  # no W= at all
    source = MaildirAccount(tmp_path / "md")
    metas = list(source.fetch_meta("INBOX"))
    got = [m.body.read() for m in source.fetch_messages("INBOX", metas)]
    assert got == [bare.replace(b"\n", b"\r\n")] * 2 + [crlf]
    assert [m.size for m in metas] == [len(b) for b in got]


def _request(key: int, data: bytes) -> AppendRequest:
    when = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return AppendRequest(key, io.BytesIO(data), len(data), frozenset(), when)


# UIDVALIDITY of the same files without a quoted header line (where the old scan counted a size
# its read did not give): what the line-by-line scan gave, so an upgrade re-plans nothing.
VALIDITIES = {
    (3, False): [1844445612],
    (4, False): [900205811],
    (5, False): [529041906],
    (1, True): [1024559700, 855175694, 579523277, 87449411],
}


def test_the_uidvalidity_of_an_mbox_is_what_it_was(tmp_path, monkeypatch):
    monkeypatch.setattr(mboxhash, "BATCH", 1 << 10)  # many batches in flight on the worker
    monkeypatch.setattr(mboxfile, "CHUNK", 64)  # and bodies cut into many chunks
    monkeypatch.setattr(__name__ + ".HEADERS", [h for h in HEADERS if not h.startswith(b">")])
    got = {}
    for seed, takeout in VALIDITIES:
        path = tmp_path / f"{seed}.mbox"
        path.write_bytes(generated(seed, 120, takeout=takeout))
        os.utime(path, (1_000_000_000, 1_000_000_000))
        account = MboxAccount(path)
        folders = [f.name for f in account.list_folders() if "\\Noselect" not in f.flags]
        got[seed, takeout] = [account.status(name).uidvalidity for name in folders]
    assert got == VALIDITIES
