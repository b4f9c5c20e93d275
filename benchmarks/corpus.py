"""The benchmark mailbox: deterministic, realistic, written into Dovecot with pipelined APPENDs.

``plan_corpus(messages, seed)`` decides every message (folder, size, flags, date) from the seed;
``body(spec)`` renders its bytes on demand (so 350 MB never sit in memory at once). Sizes are
long-tailed like real mailboxes: most messages 2-30 KB of headers and text, about 10 % carry
attachments of 50 KB-1.7 MB, and a few (one per 1,250 messages) carry 5-20 MB.

``load(host, port, user, password, corpus)`` creates the folders and APPENDs every message with
its flags and INTERNALDATE over one connection, pipelined with LITERAL+ (as fast as Dovecot
stores mail; single imapclient APPENDs would take minutes).
"""

from __future__ import annotations

import base64
import math
import random
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

from imapclient.imap_utf7 import encode as encode_utf7

# (folder, share of messages); "." is the hierarchy delimiter of both benchmark servers.
FOLDERS: tuple[tuple[str, float], ...] = (
    ("INBOX", 0.28),
    ("Sent", 0.12),
    ("Drafts", 0.01),
    ("Trash", 0.04),
    ("Junk", 0.03),
    ("Archive", 0.03),
    ("Archive.2019", 0.05),
    ("Archive.2020", 0.05),
    ("Archive.2021", 0.05),
    ("Archive.2022", 0.06),
    ("Archive.2023", 0.06),
    ("Projects", 0.02),
    ("Projects.Apollo", 0.04),
    ("Projects.Zeus", 0.03),
    ("Clients", 0.01),
    ("Clients.Müller GmbH", 0.03),
    ("Receipts", 0.03),
    ("Newsletters", 0.06),
    ("Travel", 0.02),
    ("Family & Friends", 0.02),
    ("Notifications", 0.01),
    ("Notifications.GitHub", 0.04),
)
_TEXT = (
    "the meeting budget invoice report draft review schedule quarterly server backup migration "
    "contract offer travel lunch release notes ticket please find attached regarding our call "
    "next week thanks for your help let me know if you have any questions best regards the team "
    "project deadline update status customer feedback agenda minutes follow up action items"
)
WORDS = tuple(_TEXT.split())
PEOPLE = (
    ("Alice Martin", "alice.martin@example.org"),
    ("Bob Schmidt", "bob@example.net"),
    ("Carla Rossi", "c.rossi@example.it"),
    ("Deepak Rao", "deepak.rao@example.in"),
    ("Émilie Dubois", "emilie@example.fr"),
    ("GitHub", "notifications@github.example"),
    ("Newsletter", "news@shop.example.com"),
    ("Jörg Müller", "joerg@mueller-gmbh.example.de"),
)
ME = ("Sam User", "sam@example.com")
ATTACHMENTS = (
    ("application/pdf", "report.pdf"),
    ("image/jpeg", "IMG_2041.jpg"),
    ("application/zip", "photos.zip"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "offer.docx"),
)
ZONES = tuple(timezone(timedelta(minutes=m)) for m in (0, 60, 120, -300, -420, 330, 540))
FIRST_DATE = datetime(2016, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 9 * 365 * 24 * 3600
KB, MB = 1024, 1024 * 1024
PIPELINE = 64  # APPENDs in flight while loading


@dataclass(frozen=True)
class MessageSpec:
    folder: str
    size: int  # approximate size of the rendered message
    attachment: bool
    flags: tuple[str, ...]
    internaldate: datetime
    seed: int


@dataclass
class Corpus:
    seed: int
    messages: list[MessageSpec]
    folders: list[str] = field(default_factory=lambda: [f for f, _ in FOLDERS])
    total_bytes: int = 0  # filled in by load()

    def subset(self, count: int) -> list[MessageSpec]:
        """Every k-th message: a sample with the same size and folder mix."""
        step = max(1, len(self.messages) // count)
        return self.messages[::step][:count]


def _log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _size(rng: random.Random, index: int, count: int, quick: bool) -> tuple[int, bool]:
    huge = max(1, round(count / 1250))
    if index % (count // huge) == count // huge // 2:
        return _log_uniform(rng, 5 * MB, 6 * MB if quick else 20 * MB), True
    if rng.random() < 0.10:
        return _log_uniform(rng, 50 * KB, 1 * MB if quick else 1700 * KB), True
    return _log_uniform(rng, 2 * KB, 30 * KB), False


def _flags(rng: random.Random, folder: str) -> tuple[str, ...]:
    flags = []
    if folder in {"Sent", "Drafts"} or rng.random() < 0.75:
        flags.append("\\Seen")
    if folder == "Drafts":
        flags.append("\\Draft")
    if rng.random() < 0.12:
        flags.append("\\Answered")
    if rng.random() < 0.05:
        flags.append("\\Flagged")
    if rng.random() < 0.04:
        flags.append("$Forwarded")
    if folder == "Junk":
        flags.append("$Junk")
    elif rng.random() < 0.03:
        flags.append("$NotJunk")
    if rng.random() < 0.02:
        flags.append("$Label1")
    return tuple(flags)


def plan_corpus(count: int, seed: int = 2024, *, quick: bool = False) -> Corpus:
    """``quick`` keeps attachments under 1 MB and the big messages at 5-6 MB."""
    rng = random.Random(seed)
    names = [f for f, _ in FOLDERS]
    weights = [w for _, w in FOLDERS]
    specs = []
    for index in range(count):
        folder = rng.choices(names, weights)[0]
        size, attachment = _size(rng, index, count, quick)
        moment = FIRST_DATE + timedelta(seconds=rng.randrange(SPAN_SECONDS))
        when = moment.astimezone(rng.choice(ZONES))
        specs.append(
            MessageSpec(folder, size, attachment, _flags(rng, folder), when, rng.getrandbits(48))
        )
    return Corpus(seed, specs)


# -- rendering ------------------------------------------------------------------------------


def _address(person: tuple[str, str]) -> bytes:
    name, address = person
    if name.isascii():
        return f'"{name}" <{address}>'.encode()
    encoded = base64.b64encode(name.encode()).decode()
    return f"=?UTF-8?B?{encoded}?= <{address}>".encode()


def _text(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choices(WORDS, k=rng.randint(6, 13))).capitalize() + "."
        lines.append(line.encode())
        total += len(line) + 2
    return b"\r\n".join(lines)


def _headers(rng: random.Random, spec: MessageSpec) -> list[bytes]:
    sender, recipient = (
        (ME, rng.choice(PEOPLE)) if spec.folder == "Sent" else (rng.choice(PEOPLE), ME)
    )
    sent = spec.internaldate - timedelta(seconds=rng.randint(2, 900))
    hops = [
        f"Received: from mx{n}.example.net (mx{n}.example.net [192.0.2.{rng.randint(1, 254)}])\r\n"
        f"\tby mail.example.com (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\r\n"
        f"\tfor <sam@example.com>; {format_datetime(sent + timedelta(seconds=n))}".encode()
        for n in range(rng.randint(1, 4))
    ]
    subject = " ".join(rng.choices(WORDS, k=rng.randint(3, 8))).capitalize()
    headers = [
        b"Return-Path: <" + sender[1].encode() + b">",
        *hops,
        b"From: " + _address(sender),
        b"To: " + _address(recipient),
        b"Subject: " + (b"Re: " if rng.random() < 0.3 else b"") + subject.encode(),
        b"Date: " + format_datetime(sent).encode(),
        f"Message-ID: <{rng.getrandbits(64):016x}.{spec.seed:x}@mail.example.com>".encode(),
        b"MIME-Version: 1.0",
    ]
    if rng.random() < 0.3:
        headers.append(f"In-Reply-To: <{rng.getrandbits(64):016x}@example.net>".encode())
    if rng.random() < 0.3:
        headers.append(b"Cc: " + _address(rng.choice(PEOPLE)))
    if spec.folder in {"Newsletters", "Notifications.GitHub"}:
        headers.append(b"List-Unsubscribe: <https://shop.example.com/unsubscribe?u=8812>")
    headers.append(b"X-Mailer: " + rng.choice([b"Microsoft Outlook 16.0", b"Apple Mail (2.3654)"]))
    return headers


def body(spec: MessageSpec) -> bytes:
    """The bytes of one message: the same for the same spec, CRLF line endings."""
    rng = random.Random(spec.seed)
    headers = _headers(rng, spec)
    boundary = f"----=_Part_{rng.getrandbits(40):010x}".encode()
    if not spec.attachment:
        text = _text(rng, max(200, spec.size - sum(map(len, headers)) - 100))
        if rng.random() < 0.5:
            return b"\r\n".join(
                [*headers, b"Content-Type: text/plain; charset=utf-8", b"", text, b""]
            )
        html = (
            b"<html><body><p>"
            + text[: len(text) // 2].replace(b"\r\n", b"</p>\r\n<p>")
            + b"</p></body></html>"
        )
        parts = [
            *headers, b'Content-Type: multipart/alternative; boundary="' + boundary + b'"', b"",
            b"--" + boundary, b"Content-Type: text/plain; charset=utf-8", b"", text[: len(text) // 2],
            b"--" + boundary, b"Content-Type: text/html; charset=utf-8", b"", html,
            b"--" + boundary + b"--", b"",
        ]  # fmt: skip
        return b"\r\n".join(parts)
    mime, name = rng.choice(ATTACHMENTS)
    payload = base64.encodebytes(rng.randbytes(spec.size * 3 // 4)).replace(b"\n", b"\r\n")
    parts = [
        *headers, b'Content-Type: multipart/mixed; boundary="' + boundary + b'"', b"",
        b"This is a multi-part message in MIME format.", b"--" + boundary,
        b"Content-Type: text/plain; charset=utf-8", b"", _text(rng, rng.randint(200, 2000)),
        b"--" + boundary,
        f'Content-Type: {mime}; name="{name}"'.encode(),
        f'Content-Disposition: attachment; filename="{name}"'.encode(),
        b"Content-Transfer-Encoding: base64", b"", payload.rstrip(b"\r\n"),
        b"--" + boundary + b"--", b"",
    ]  # fmt: skip
    return b"\r\n".join(parts)


# -- loading --------------------------------------------------------------------------------


def quote(name: str) -> bytes:
    raw: bytes = encode_utf7(name)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def internaldate(moment: datetime) -> bytes:
    return moment.strftime('"%d-%b-%Y %H:%M:%S %z"').encode()


class _Wire:
    """Just enough IMAP to log in, create folders and pipeline APPENDs."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.tags = 0
        self.file.readline()  # greeting

    def send(self, command: bytes, literal: bytes | None = None) -> bytes:
        self.tags += 1
        tag = b"L%d" % self.tags
        if literal is None:
            self.sock.sendall(tag + b" " + command + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + command + b" {%d+}\r\n" % len(literal))
            self.sock.sendall(literal + b"\r\n")
        return tag

    def wait(self, tag: bytes) -> bytes:
        for _ in range(1_000_000):
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed the connection while loading")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"loading failed: {line!r}")
                return line
        raise RuntimeError("no tagged answer")

    def close(self) -> None:
        self.wait(self.send(b"LOGOUT"))
        self.file.close()
        self.sock.close()


def load(
    host: str,
    port: int,
    user: str,
    password: str,
    corpus: Corpus,
    specs: list[MessageSpec] | None = None,
) -> int:
    """Create the folders, APPEND the messages (all, or ``specs``); returns the bytes written."""
    wire = _Wire(host, port)
    wire.wait(wire.send(b"LOGIN " + quote(user) + b" " + quote(password)))
    for folder in corpus.folders:
        if folder != "INBOX":
            tag = wire.send(b"CREATE " + quote(folder))
            try:
                wire.wait(tag)
            except RuntimeError as exc:
                if "ALREADYEXISTS" not in str(exc):
                    raise
            wire.wait(wire.send(b"SUBSCRIBE " + quote(folder)))
    total = 0
    pending: list[bytes] = []
    for spec in corpus.messages if specs is None else specs:
        data = body(spec)
        total += len(data)
        flags = b"(" + " ".join(spec.flags).encode() + b")"
        command = (
            b"APPEND " + quote(spec.folder) + b" " + flags + b" " + internaldate(spec.internaldate)
        )
        pending.append(wire.send(command, data))
        if len(pending) >= PIPELINE:
            wire.wait(pending.pop(0))
    for tag in pending:
        wire.wait(tag)
    wire.close()
    return total
