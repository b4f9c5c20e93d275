"""A deterministic, realistically awkward test mailbox, and a loader that writes it over IMAP.

``build_corpus(seed)`` returns the same bytes for the same seed: folders with non-ASCII names,
``&``, spaces and dots, nested three deep, parents that exist only as parents, look-alikes of
special-use folders; messages with every system flag and some keywords, with and without
Message-ID, byte-identical duplicates, raw 8-bit headers, broken MIME, bare LF line endings,
attachments, and INTERNALDATEs over fifteen years in many time zones.

``load_corpus`` APPENDs it to an account, keeping flags and INTERNALDATE, and reports folders the
server refused instead of failing.
"""

from __future__ import annotations

import base64
import random
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import imapclient
from imapclient.exceptions import IMAPClientError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailferry.sandbox.dovecot import DovecotServer

Folder = tuple[str, ...]

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted")
KEYWORDS = ("$Forwarded", "$Label1", "$MDNSent", "Work")
# Every flag and keyword appears at least once in INBOX, on its first messages.
GUARANTEED_FLAGS: tuple[tuple[str, ...], ...] = (
    ("\\Seen",),
    ("\\Seen", "\\Answered"),
    ("\\Flagged",),
    ("\\Draft",),
    ("\\Seen", "\\Deleted"),
    ("\\Seen", "$Forwarded"),
    ("$Label1",),
    ("\\Seen", "$MDNSent"),
    ("\\Flagged", "Work"),
    (),
)
ZONES = tuple(
    timezone(timedelta(minutes=m)) for m in (0, -300, 330, 540, -210, 60, 120, 765, -600, 345)
)
FIRST_DATE = datetime(2010, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 15 * 365 * 24 * 3600
WORDS = (
    "meeting", "budget", "invoice", "report", "draft", "review", "schedule", "quarterly", "server",
    "backup", "migration", "contract", "offer", "travel", "lunch", "release", "notes", "ticket",
)  # fmt: skip

INBOX: Folder = ("INBOX",)
# (folder, messages per scale unit); order matters for determinism.
FOLDER_SIZES: tuple[tuple[Folder, int], ...] = (
    (INBOX, 40),
    (("Projects", "2024"), 2),
    (("Projects", "2024", "Q1"), 3),
    (("Projects", "2024", "Q2"), 0),
    (("Archive", "2009"), 3),
    (("Entwürfe",), 2),
    (("Reçus",), 2),
    (("日本語",), 2),
    (("Привет",), 2),
    (("R&D",), 2),
    (("Client Projects",), 2),
    (("Releases", "v1.2"), 2),
    (("Sent Messages",), 4),
    (("Deleted Messages",), 2),
    (("Junk E-mail",), 2),
    (("Drafts",), 2),
    (("Empty",), 0),
)
# Created only implicitly, by creating a child: \Noselect on some servers.
PARENT_ONLY: frozenset[Folder] = frozenset({("Archive",), ("Releases",)})
UNSUBSCRIBED: frozenset[Folder] = frozenset({("Empty",), ("Archive", "2009"), ("Junk E-mail",)})


@dataclass(frozen=True)
class CorpusMessage:
    folder: Folder  # path segments, delimiter-free
    body: bytes
    flags: tuple[str, ...]
    internaldate: datetime  # tz-aware, whole seconds


@dataclass
class Corpus:
    folders: list[Folder]  # every folder, including empty ones and parents; parents first
    subscribed: set[Folder]
    messages: list[CorpusMessage]
    parent_only: set[Folder] = field(default_factory=set)  # not CREATEd by load_corpus

    def in_folder(self, folder: Folder) -> list[CorpusMessage]:
        return [m for m in self.messages if m.folder == folder]

    @property
    def total_bytes(self) -> int:
        return sum(len(m.body) for m in self.messages)


@dataclass
class LoadReport:
    created: list[Folder] = field(default_factory=list)
    refused: dict[Folder, str] = field(default_factory=dict)  # folder -> server's reason
    appended: int = 0
    skipped_messages: int = 0


# -- message bodies -------------------------------------------------------------------------


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _text_lines(rng: random.Random, lines: int) -> list[bytes]:
    return [_words(rng, rng.randint(4, 12)).capitalize().encode() for _ in range(lines)]


def _headers(
    rng: random.Random, when: datetime, subject: bytes, *, message_id: bool = True
) -> list[bytes]:
    sent = when - timedelta(seconds=rng.randint(1, 600))
    lines = [
        b"From: " + rng.choice([b"Alice <alice@example.org>", b"bob@example.net"]),
        b"To: user@example.com",
        b"Subject: " + subject,
        b"Date: " + format_datetime(sent).encode(),
    ]
    if message_id:
        lines.append(f"Message-ID: <{rng.getrandbits(64):016x}@corpus.mailferry.test>".encode())
    return [*lines, b"MIME-Version: 1.0"]


def _plain(rng: random.Random, when: datetime, *, message_id: bool = True) -> bytes:
    subject = _words(rng, 4).encode()
    head = [*_headers(rng, when, subject, message_id=message_id), b"Content-Type: text/plain"]
    return b"\r\n".join([*head, b"", *_text_lines(rng, rng.randint(2, 8)), b""])


def _no_message_id(rng: random.Random, when: datetime) -> bytes:
    return _plain(rng, when, message_id=False)


def _bare_lf(rng: random.Random, when: datetime) -> bytes:
    return _plain(rng, when).replace(b"\r\n", b"\n")


def _eight_bit(rng: random.Random, when: datetime, charset: str) -> bytes:
    text = rng.choice(["Grüße aus Köln", "Reçu: café crème", "Ünïcödé Prüfung"])
    head = _headers(rng, when, text.encode(charset))
    head[0] = "From: Jörg Müller <joerg@example.de>".encode(charset)
    head += [
        f"Content-Type: text/plain; charset={charset}".encode(),
        b"Content-Transfer-Encoding: 8bit",
    ]
    body = f"Schöne Grüße, à bientôt, {text}.".encode(charset)
    return b"\r\n".join([*head, b"", body, *_text_lines(rng, 2), b""])


def _utf8(rng: random.Random, when: datetime) -> bytes:
    return _eight_bit(rng, when, "utf-8")


def _latin1(rng: random.Random, when: datetime) -> bytes:
    return _eight_bit(rng, when, "latin-1")


def _b64_lines(data: bytes) -> list[bytes]:
    encoded = base64.b64encode(data)
    return [encoded[i : i + 76] for i in range(0, len(encoded), 76)]


def _multipart(
    rng: random.Random, when: datetime, size: int, *, close: bool = True, corrupt: bool = False
) -> bytes:
    boundary = f"=_mf_{rng.getrandbits(48):012x}".encode()
    subject = b"Attachment: " + _words(rng, 2).encode()
    head = [
        *_headers(rng, when, subject),
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
    ]
    attachment = _b64_lines(rng.randbytes(size))
    if corrupt:
        attachment[len(attachment) // 2] = b"!!not*base64@@=" + attachment[0][:20]
        attachment[-1] = attachment[-1].rstrip(b"=") + b"="
    parts = [
        *head, b"", b"This is a multi-part message in MIME format.", b"--" + boundary,
        b"Content-Type: text/plain; charset=us-ascii", b"", *_text_lines(rng, 3), b"--" + boundary,
        b"Content-Type: application/octet-stream; name=data.bin",
        b"Content-Disposition: attachment; filename=data.bin",
        b"Content-Transfer-Encoding: base64", b"", *attachment,
    ]  # fmt: skip
    if close:
        parts.append(b"--" + boundary + b"--")
    return b"\r\n".join([*parts, b""])


def _attachment(rng: random.Random, when: datetime) -> bytes:
    return _multipart(rng, when, rng.choice([2_000, 5_000, 12_000, 30_000]))


def _missing_boundary(rng: random.Random, when: datetime) -> bytes:
    return _multipart(rng, when, 1_500, close=False)


def _bad_base64(rng: random.Random, when: datetime) -> bytes:
    return _multipart(rng, when, 3_000, corrupt=True)


KINDS: tuple[Callable[[random.Random, datetime], bytes], ...] = (
    _plain, _plain, _plain, _no_message_id, _utf8, _latin1, _bare_lf, _attachment,
    _missing_boundary, _bad_base64,
)  # fmt: skip


# -- corpus ---------------------------------------------------------------------------------


def _date(rng: random.Random) -> datetime:
    moment = FIRST_DATE + timedelta(seconds=rng.randrange(SPAN_SECONDS))
    return moment.astimezone(rng.choice(ZONES))


def _flags(rng: random.Random, folder: Folder) -> tuple[str, ...]:
    flags = [
        f
        for f, p in zip(SYSTEM_FLAGS, (0.7, 0.2, 0.1, 0.02, 0.03), strict=True)
        if rng.random() < p
    ]
    flags += [k for k in KEYWORDS if rng.random() < 0.08]
    if folder == ("Drafts",):
        flags.append("\\Draft")
    if folder == ("Sent Messages",):
        flags.append("\\Seen")
    return tuple(dict.fromkeys(flags))


def _folder_messages(rng: random.Random, folder: Folder, count: int) -> list[CorpusMessage]:
    messages = []
    for i in range(count):
        when = _date(rng)
        body = (KINDS[i % len(KINDS)] if folder == INBOX else rng.choice(KINDS))(rng, when)
        fixed = folder == INBOX and i < len(GUARANTEED_FLAGS)
        flags = GUARANTEED_FLAGS[i] if fixed else _flags(rng, folder)
        messages.append(CorpusMessage(folder, body, flags, when))
    return messages


def _specials(rng: random.Random, big_message_mb: int) -> list[CorpusMessage]:
    """Duplicates (2 and 3 byte-identical copies), a 200 KB attachment, the big message."""
    pair = CorpusMessage(INBOX, _plain(rng, when := _date(rng)), ("\\Seen",), when)
    triple = CorpusMessage(INBOX, _no_message_id(rng, when := _date(rng)), (), when)
    large = CorpusMessage(INBOX, _multipart(rng, when := _date(rng), 200_000), ("\\Seen",), when)
    extra = [pair, pair, triple, triple, triple, large]
    if big_message_mb > 0:
        body = _multipart(rng, when := _date(rng), big_message_mb * 1024 * 1024 * 57 // 78)
        extra.append(CorpusMessage(INBOX, body, ("\\Seen",), when))
    return extra


def _with_parents(folders: list[Folder]) -> list[Folder]:
    every = {f[:i] for f in folders for i in range(1, len(f) + 1)}
    return sorted(every, key=lambda f: (len(f), [*f]))


def build_corpus(seed: int = 1, *, scale: int = 1, big_message_mb: int = 0) -> Corpus:
    """The same corpus for the same arguments; under 3 MB at scale 1 without the big message.

    ``big_message_mb`` adds one INBOX message whose base64 attachment makes it about that big.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography
    messages: list[CorpusMessage] = []
    for folder, per_scale in FOLDER_SIZES:
        messages += _folder_messages(rng, folder, per_scale * scale)
    messages += _specials(rng, big_message_mb)
    folders = _with_parents([f for f, _ in FOLDER_SIZES])
    subscribed = {f for f in folders if f not in UNSUBSCRIBED and f not in PARENT_ONLY}
    return Corpus(folders, subscribed, messages, set(PARENT_ONLY))


# -- loading over IMAP ----------------------------------------------------------------------


def connect(server: DovecotServer, user: str, password: str) -> Any:
    """A logged-in ``imapclient.IMAPClient`` on the server's plain port, with tz-aware dates."""
    client = imapclient.IMAPClient(server.host, server.port, ssl=False, timeout=60)
    client.normalise_times = False
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(user, password)
    return client


def folder_name(folder: Folder, delimiter: str, prefix: str = "") -> str:
    """The server's name: ``prefix`` (a personal namespace's, e.g. ``INBOX.``) before all but INBOX."""
    name = delimiter.join(folder)
    return name if folder == INBOX else prefix + name


def _refusal(folder: Folder, delimiter: str) -> str | None:
    for segment in folder:
        if delimiter in segment:
            return f"segment {segment!r} contains the delimiter {delimiter!r}"
    return None


def _create(
    client: Any, folder: Folder, delimiter: str, report: LoadReport, prefix: str = ""
) -> None:
    parent_refused = any(folder[:i] in report.refused for i in range(1, len(folder)))
    reason = "parent refused" if parent_refused else _refusal(folder, delimiter)
    if reason is None:
        try:
            client.create_folder(folder_name(folder, delimiter, prefix))
            report.created.append(folder)
        except IMAPClientError as exc:
            if "ALREADYEXISTS" not in str(exc).upper():
                reason = str(exc)
    if reason is not None:
        report.refused[folder] = reason


def load_corpus(client: Any, corpus: Corpus, delimiter: str, prefix: str = "") -> LoadReport:
    """Create the folders, subscribe, APPEND every message with its flags and INTERNALDATE.

    Folders the server refuses (or whose names contain ``delimiter``) are skipped with their
    messages and children, and listed in the returned report. ``\\Deleted`` messages are
    appended with the flag and not expunged.
    """
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    report = LoadReport()
    for folder in corpus.folders:
        if folder == INBOX or folder in corpus.parent_only:
            continue
        _create(client, folder, delimiter, report, prefix)
    for folder in sorted(corpus.subscribed - report.refused.keys()):
        client.subscribe_folder(folder_name(folder, delimiter, prefix))
    for message in corpus.messages:
        if message.folder in report.refused:
            report.skipped_messages += 1
            continue
        name = folder_name(message.folder, delimiter, prefix)
        client.append(name, message.body, message.flags, message.internaldate)
        report.appended += 1
    return report
