"""The bytes of IMAP that imapclient does not write for us: pipelined APPEND and its helpers.

imapclient (on imaplib) sends one command and waits for its answer. A migration over a link with 20 ms round
trips cannot afford that, so APPENDs are written back to back with non-synchronising literals (LITERAL+,
RFC 7888) and their tagged answers read afterwards. Bodies are streamed from their spool in chunks, so a
100 MB message never sits in memory whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imap_utf7 import encode as encode_utf7

from mailferry.domain.errors import ConnectError
from mailferry.domain.model import AppendRequest, AppendResult, RawName
from mailferry.domain.responses import slow_down

CHUNK = 1 << 20
# APPENDs are written in segments of about this many bytes, not a write per head and per body:
# a burst of 200 small messages was 400 writes, each a system call here and a wake-up (and a
# read) for the server.
COALESCE = 64 << 10
WINDOW = 100  # short commands written ahead of their answers (two windows in flight)
MAX_SET_CHARS = 8000  # a UID set this long keeps a command line far below servers' limits
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LITERAL_MARK = b"{literal}"  # where a literal stood in a line read by ``Pipeline.read_response``
_PRINTABLE = re.compile(rb"[\x20-\x7e]*")
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_TAGGED = re.compile(rb"^(\S+) (OK|NO|BAD)\b ?(.*)$", re.IGNORECASE | re.DOTALL)


class Connection(Protocol):
    """The three calls of imaplib.IMAP4 we use for raw traffic (documented public methods)."""

    def send(self, data: bytes) -> None: ...

    def readline(self) -> bytes: ...

    def read(self, size: int) -> bytes: ...


def quote_mailbox(name: str) -> bytes:
    """A folder name as an IMAP quoted string, in modified UTF-7 (a ``RawName``: its own bytes)."""
    raw: bytes = name.raw if isinstance(name, RawName) else _utf7(name)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _utf7(name: str) -> bytes:
    """Modified UTF-7; printable ASCII without ``&`` is itself (thousands of names a pass)."""
    if name.isascii() and "&" not in name and name.isprintable():
        return name.encode("ascii")
    encoded: bytes = encode_utf7(name)
    return encoded


def decode_mailbox(raw: bytes) -> str:
    """A mailbox name off the wire: modified UTF-7 when it is that (exactly as we would write it),
    else a ``RawName`` (UTF-8 if valid, else Latin-1) that keeps the bytes to send back."""
    if b"&" not in raw and _PRINTABLE.fullmatch(raw) is not None:
        return raw.decode("ascii")  # plain ASCII is its own modified UTF-7 (most names: fast)
    if all(0x20 <= byte <= 0x7E for byte in raw):
        try:
            text: str = decode_utf7(raw)
        except (ValueError, UnicodeError):  # bad base64 (binascii.Error), or not UTF-16
            pass
        else:
            if encode_utf7(text) == raw:
                return text
    try:
        return RawName(raw.decode("utf-8"), raw)
    except UnicodeDecodeError:
        return RawName(raw.decode("latin-1"), raw)


def internaldate(moment: dt.datetime) -> bytes:
    """``"dd-Mon-yyyy hh:mm:ss +zzzz"``, locale-independent; a naive time is refused (never "now")."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("INTERNALDATE needs a timezone")
    offset = moment.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    text = (
        f'"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year:04d} '
        f'{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {sign}{hh:02d}{mm:02d}"'
    )
    return text.encode("ascii")


def flag_list(flags: Iterable[str]) -> bytes:
    return b"(" + b" ".join(sorted(f.encode("utf-8", "surrogateescape") for f in flags)) + b")"


def uid_set(uids: Iterable[int]) -> str:
    """Compress UIDs into an IMAP sequence set: ``1:5,9,12:14``."""
    return ",".join(_uid_ranges(uids))


def uid_sets(uids: Iterable[int], max_chars: int = MAX_SET_CHARS) -> Iterator[str]:
    """``uid_set`` in pieces of at most ``max_chars`` characters (a range is never split), for
    commands whose UIDs grow with the folder: servers refuse long command lines (Dovecot's
    ``imap_max_line_length`` is 64 KB)."""
    piece: list[str] = []
    length = 0
    for part in _uid_ranges(uids):
        if piece and length + 1 + len(part) > max_chars:
            yield ",".join(piece)
            piece, length = [], 0
        piece.append(part)
        length += len(part) + (1 if length else 0)
    if piece:
        yield ",".join(piece)


def _uid_ranges(uids: Iterable[int]) -> Iterator[str]:
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        yield str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}"
        i = j + 1


@dataclass
class Tagged:
    status: str
    text: bytes


@dataclass
class SentAppends:
    """APPENDs written, their answers not read yet (``Pipeline.send_appends``)."""

    requests: Sequence[AppendRequest]
    tags: list[bytes]
    multi: bool  # one MULTIAPPEND command (one tag)
    starts: list[int]  # where each body's spool stood: sent again one by one if refused whole


class Pipeline:
    """Raw command traffic on an imaplib connection, with our own tags (``mf1``, ``mf2``…)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._counter = 0
        self._early: dict[bytes, Tagged] = {}  # answers read before their command was waited for

    def next_tag(self) -> bytes:
        self._counter += 1
        return b"mf%d" % self._counter

    def send(self, data: bytes) -> None:
        self._conn.send(data)

    def send_body(self, body: BinaryIO, size: int, out: bytearray | None = None) -> None:
        """The body's ``size`` bytes; added to ``out`` (written when it is full) if given."""
        left = size
        while left > 0:
            chunk = body.read(min(CHUNK, left))
            if not chunk:
                raise ValueError("message spool shorter than its size")
            if out is None:
                self._conn.send(chunk)
            else:
                self._coalesce(out, chunk)
            left -= len(chunk)

    def _coalesce(self, out: bytearray, data: bytes) -> None:
        out += data
        if len(out) >= COALESCE:
            self._conn.send(bytes(out))
            out.clear()

    def read_response_line(self) -> bytes:
        """One logical response line, with any literals inlined (they are skipped: we need none)."""
        return self.read_response(keep_literals=False)[0]

    def read_response(self, *, keep_literals: bool = True) -> tuple[bytes, list[bytes]]:
        """One logical response line, each literal in it replaced by ``{literal}``, and the
        literals' contents in order (when ``keep_literals``: a folder name may come as one)."""
        line = self._readline()
        literals: list[bytes] = []
        while (match := _LITERAL_AT_END.search(line)) is not None:
            literal = self._conn.read(int(match.group(1)))
            if keep_literals:
                literals.append(literal)
            line = line[: match.start()] + LITERAL_MARK + self._readline()
        return line, literals

    def _readline(self) -> bytes:
        line = self._conn.readline()
        if not line:
            raise ConnectError("the server closed the connection")
        return line

    def wait_tagged(
        self,
        tags: Iterable[bytes],
        on_continuation: Callable[[], None] | None = None,
        *,
        on_untagged: Callable[[bytes, list[bytes]], None] | None = None,
        leave: int = 0,
    ) -> dict[bytes, Tagged]:
        """Read until every tag in ``tags`` but ``leave`` completed (any of them: a window of
        pipelined commands); ``+`` lines call ``on_continuation``, other untagged lines go to
        ``on_untagged`` with their literals. ``tags`` is a set the caller may share: completed
        tags are removed from it when it is one."""
        pending = tags if isinstance(tags, set) else set(tags)
        done: dict[bytes, Tagged] = {}
        for tag in pending & self._early.keys():  # read while waiting for commands before it
            done[tag] = self._early.pop(tag)
        pending.difference_update(done)
        while len(pending) > leave:
            line, literals = self.read_response(keep_literals=on_untagged is not None)
            if line.startswith(b"+"):
                if on_continuation is None:
                    raise ConnectError("unexpected continuation request from the server")
                on_continuation()
                continue
            if line[:5].upper() == b"* BYE":
                said = _text(line[5:])
                throttled = slow_down(said, "server asks to slow down")
                if throttled is not None:
                    raise throttled
                raise ConnectError("the server ended the session: " + said)
            if line.startswith(b"*"):
                if on_untagged is not None:
                    on_untagged(line, literals)
                continue
            self._file_tagged(line, pending, done)
        return done

    def _file_tagged(self, line: bytes, pending: set[bytes], done: dict[bytes, Tagged]) -> None:
        """A tagged answer into ``done`` if waited for, else kept if ours (written earlier)."""
        match = _TAGGED.match(line.rstrip(b"\r\n"))
        if match is None:
            return
        tag, answer = match.group(1), Tagged(match.group(2).upper().decode(), match.group(3))
        if tag in pending:
            pending.discard(tag)
            done[tag] = answer
        elif tag.startswith(b"mf"):
            self._early[tag] = answer

    def commands(self, commands: Sequence[bytes], window: int = WINDOW) -> list[Tagged]:
        """Short commands (``CREATE "a"``) written ``window`` ahead of their answers, which come
        back in order: N folders set up in about N / ``window`` round trips instead of N. The
        server takes them one after another, so a parent created before its child still is."""
        tags = [self.next_tag() for _ in commands]
        outstanding: set[bytes] = set()
        answers: dict[bytes, Tagged] = {}
        for start in range(0, len(commands), window):
            part = range(start, min(start + window, len(commands)))
            self._conn.send(b"".join(b"%s %s\r\n" % (tags[i], commands[i]) for i in part))
            outstanding.update(tags[i] for i in part)
            answers |= self.wait_tagged(outstanding, leave=window)
        answers |= self.wait_tagged(outstanding)
        return [answers[tag] for tag in tags]

    def append_pipelined(
        self, folder: str, requests: Sequence[AppendRequest]
    ) -> list[AppendResult]:
        """Every APPEND sent with a LITERAL+ literal before any answer is read."""
        results = self.read_appends(self.send_appends(folder, requests, multi=False))
        assert results is not None  # noqa: S101 - only a MULTIAPPEND is refused as a whole
        return results

    def append_multi(
        self, folder: str, requests: Sequence[AppendRequest]
    ) -> list[AppendResult] | None:
        """One MULTIAPPEND (RFC 3502) with LITERAL+ literals: one command, one answer, atomic.

        Returns None when the server refused the command as a whole (nothing was stored): the caller
        then appends one by one to learn which message is to blame.
        """
        return self.read_appends(self.send_appends(folder, requests, multi=True))

    def send_appends(
        self, folder: str, requests: Sequence[AppendRequest], *, multi: bool
    ) -> SentAppends:
        """Write the APPENDs (one MULTIAPPEND when ``multi``) with LITERAL+ literals, and return
        without reading an answer: ``read_appends`` reads them, later, after other commands
        written meanwhile perhaps (their answers are kept until asked for: ``wait_tagged``)."""
        mailbox = quote_mailbox(folder)
        sent = SentAppends(requests, [], multi, [r.body.tell() for r in requests])
        out = bytearray()
        for index, request in enumerate(requests):
            if multi and index:  # later messages continue the same command: " (flags) date {n+}"
                head = b" %s %s {%d+}\r\n" % (
                    flag_list(request.flags),
                    internaldate(request.internaldate),
                    request.size,
                )
            else:
                sent.tags.append(self.next_tag())
                head = _append_head(sent.tags[-1], mailbox, request, b"+")
            self._coalesce(out, head)
            self.send_body(request.body, request.size, out)
            if not multi:
                self._coalesce(out, b"\r\n")
        if multi:
            out += b"\r\n"
        if out:
            self._conn.send(bytes(out))
        return sent

    def read_appends(self, sent: SentAppends) -> list[AppendResult] | None:
        """The answers to ``send_appends``; None for a MULTIAPPEND refused as a whole."""
        answers = self.wait_tagged(sent.tags)
        if not sent.multi:
            pairs = zip(sent.requests, sent.tags, strict=True)
            return [_result(request, answers[tag]) for request, tag in pairs]
        answer = answers[sent.tags[0]]
        if answer.status != "OK":
            return None
        found = _appenduid_set(answer.text)
        if found is None or len(found[1]) != len(sent.requests):
            return [AppendResult(r.key, ok=True) for r in sent.requests]
        validity, uids = found
        return [
            AppendResult(r.key, ok=True, target_uid=u, target_uidvalidity=validity)
            for r, u in zip(sent.requests, uids, strict=True)
        ]

    def append_synchronous(self, folder: str, request: AppendRequest) -> AppendResult:
        """One APPEND with a synchronising literal (the server says ``+`` before the body)."""
        mailbox = quote_mailbox(folder)
        tag = self.next_tag()
        self._conn.send(_append_head(tag, mailbox, request, b""))

        def send() -> None:
            self.send_body(request.body, request.size)
            self._conn.send(b"\r\n")

        answers = self.wait_tagged([tag], on_continuation=send)
        return _result(request, answers[tag])


def _append_head(tag: bytes, mailbox: bytes, request: AppendRequest, plus: bytes) -> bytes:
    return b"%s APPEND %s %s %s {%d%s}\r\n" % (
        tag,
        mailbox,
        flag_list(request.flags),
        internaldate(request.internaldate),
        request.size,
        plus,
    )


def _result(request: AppendRequest, answer: Tagged) -> AppendResult:
    if answer.status != "OK":
        return AppendResult(request.key, ok=False, reason=_text(answer.text) or answer.status)
    match = _APPENDUID.search(answer.text)
    if match is None:
        return AppendResult(request.key, ok=True)
    validity, uid = int(match.group(1)), int(match.group(2))
    return AppendResult(request.key, ok=True, target_uid=uid, target_uidvalidity=validity)


_APPENDUID_SET = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]", re.IGNORECASE)


def _appenduid_set(text: bytes) -> tuple[int, list[int]] | None:
    """UIDVALIDITY and the UIDs of ``[APPENDUID validity 5:7,9]`` in order, or None when absent."""
    match = _APPENDUID_SET.search(text)
    if match is None:
        return None
    uids: list[int] = []
    for part in match.group(2).decode().split(","):
        low, _, high = part.partition(":")
        first, last = int(low), int(high or low)
        step = 1 if last >= first else -1
        uids.extend(range(first, last + step, step))
    return int(match.group(1)), uids


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


ListEntry = tuple[frozenset[str], str | None, str]
_LIST_HEAD = re.compile(rb'^\(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") ?(.*)$', re.IGNORECASE | re.DOTALL)


def parse_list(data: Sequence[bytes | tuple[bytes, bytes] | None]) -> list[ListEntry]:
    """LIST/LSUB responses as imaplib returns them -> (attributes, delimiter, decoded name).

    Written here because imapclient's parser rejects legal unquoted names such as ``c[c`` that Dovecot
    sends. A name may be an atom (to the end of the line), a quoted string, or a literal.
    """
    entries: list[ListEntry] = []
    attributes: dict[bytes, frozenset[str]] = {}  # one set per spelling: most folders share one
    for item in data:
        if item is None or item == b"":
            continue
        line, literal = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
        match = _LIST_HEAD.match(line.rstrip(b"\r\n"))
        if match is None:
            continue
        raw_flags = match.group(1)
        flags = attributes.get(raw_flags)
        if flags is None:
            flags = attributes[raw_flags] = frozenset(
                f.decode("ascii", "replace") for f in raw_flags.split()
            )
        raw_delim = match.group(2)
        delimiter = (
            None if raw_delim.upper() == b"NIL" else _unquote(raw_delim).decode("ascii", "replace")
        )
        rest = match.group(3)
        if literal is not None:
            raw_name = literal
        elif rest.startswith(b'"'):
            raw_name = _unquote(rest)
        else:
            raw_name = rest
        entries.append((flags, delimiter, decode_mailbox(raw_name)))
    return entries


def _unquote(quoted: bytes) -> bytes:
    return unescape(quoted.strip()[1:-1])


_ESCAPED = re.compile(rb"\\(.)")


def unescape(body: bytes) -> bytes:
    """A quoted string's bytes without its backslash escapes (RFC 3501 escapes ``"`` and itself)."""
    return _ESCAPED.sub(rb"\1", body) if b"\\" in body else body


_STATUS_ITEMS = re.compile(rb"\(([^()]*)\)\s*$")


def parse_status(data: Sequence[bytes | tuple[bytes, bytes] | None]) -> dict[bytes, int]:
    """``* STATUS name (MESSAGES 3 UIDNEXT 9 ...)`` -> {b"MESSAGES": 3, ...}, whatever the name holds."""
    # Literal contents (a name sent as {n}) are left out: only the line around them is read.
    line = b"".join((item[0] if isinstance(item, tuple) else item) or b"" for item in data)
    match = _STATUS_ITEMS.search(line)
    if match is None:
        return {}
    words = match.group(1).split()
    return {key.upper(): int(value) for key, value in zip(words[::2], words[1::2], strict=False)}
