"""ImapAccount: the MailAccount port over a real IMAP server (imapclient for control, wire.py for bulk).

Why one module of 400+ lines: it is one class, the whole MailAccount port over IMAP (folders,
listing, fetching, appending, flags), and only it holds the session's selected-folder state; FETCH
parsing lives in rows.py, raw pipelined traffic in wire.py, logins in session.py.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import imapclient

from mailferry.adapters.imap.atoms import internaldate as _internaldate
from mailferry.adapters.imap.bodies import (
    SentBodies,
    Stash,
    fetch_in_parts,
    read_bodies,
    send_bodies,
)
from mailferry.adapters.imap.changes import count_changed
from mailferry.adapters.imap.examine import (
    Examined,
    Sent,
    read_examined,
    send_examine_and_list,
)
from mailferry.adapters.imap.opening import Personal, enable_and_namespace
from mailferry.adapters.imap.rows import BODY, MESSAGE_ID, FetchRow, by_uid, parse_rows
from mailferry.adapters.imap.session import (
    Client,
    Credentials,
    as_str,
    open_client,
    translated,
)
from mailferry.adapters.imap.statuses import (
    Answers,
    Collect,
    list_inbox_open,
    list_status,
    pipelined_status,
    status_option,
    wire_name,
)
from mailferry.adapters.imap.wire import (
    ListEntry,
    parse_list,
    parse_status,
    quote_mailbox,
    uid_sets,
)
from mailferry.adapters.occupancy import Occupancy
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import ConnectError, FolderError, MailferryError, ThrottledError
from mailferry.domain.identity import normalise_message_id
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    Endpoint,
    FetchedMessage,
    FolderInfo,
    FolderStatus,
    MessageMeta,
)
from mailferry.domain.responses import slow_down

META_CHUNK = 1000  # messages per metadata FETCH command
MARKS_PER_FETCH = 500  # sequence numbers per FETCH of window marks (a short command line)
META_ITEMS = ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
MESSAGE_ID_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
LISTING_ITEMS = [*META_ITEMS, MESSAGE_ID_ITEM]  # a first pass's listing (``status_with_listing``)
BODY_BATCH_BYTES = 8 << 20  # small messages fetched together up to this many bytes
PARTIAL_CHUNK = 4 << 20  # large messages fetched in partial chunks of this size
SPOOL_IN_MEMORY = 1 << 20  # bodies larger than this spool to a temporary file
AHEAD_BURSTS = 2  # bursts whose bodies are asked ahead (``send_bodies``): one being read, the next


class ImapAccount:
    """One logged-in IMAP account. ``readonly`` accounts EXAMINE folders and never write."""

    settle_pause = 1.0  # ``LateWrites``: a killed run's last APPENDs may land after it died

    def __init__(self, client: Client, *, readonly: bool) -> None:
        self._client = client
        self._readonly = readonly
        self._caps = frozenset(as_str(c).upper() for c in client.capabilities())
        self._selected: str | None = None
        self._select_info: dict[bytes, Any] = {}
        self._just_selected = False
        # Commands written ahead, their answers not read yet, in the order they were written: a
        # folder's listing (``send_listing``), a burst's bodies (``send_bodies``).
        self._ahead: collections.deque[Sent | SentBodies] = collections.deque()
        self._stash = Stash()  # rows of bodies asked ahead, read among an earlier burst's
        self._pipeline = client.pipeline
        # The statuses a LIST brought (``_list_extended``), for the next ``statuses``; any other
        # command drops them (``_guard``).
        self._listed: Answers | None = None
        self._occupancy = (
            Occupancy()
        )  # one thread at a time in the I/O below (adapters/occupancy.py)
        with self._guard():  # one round trip at most; NAMESPACE may have come with CAPABILITY
            personal = enable_and_namespace(self._pipeline, self._caps, client.namespaces)
        self._prefix = ""  # the personal namespace's prefix, set by _find_delimiter
        self._delimiter = self._find_delimiter(personal)

    @classmethod
    def connect(
        cls,
        endpoint: Endpoint,
        credentials: Credentials,
        *,
        tls: TlsOptions | None = None,
        timeout: float = 120.0,
        readonly: bool = False,
    ) -> ImapAccount:
        client = open_client(endpoint, credentials, tls or TlsOptions(), timeout)
        try:
            return cls(client, readonly=readonly)
        except BaseException:  # ENABLE or NAMESPACE failed (a BYE after login): no socket left open
            with contextlib.suppress(Exception):
                client.shutdown()
            raise

    @contextlib.contextmanager
    def _guard(
        self, folder: str | None = None, *, keep: Sent | SentBodies | None = None
    ) -> Iterator[None]:
        """``translated`` plus one thing only the session knows: the text of a BYE that came just
        before the connection closed ("Server Unavailable. 15" is a request to slow down). What
        was written ahead is read first (up to ``keep``, the command whose answer is wanted).
        A second thread entering while one is inside raises ``ConcurrentUseError`` at once
        (adapters/occupancy.py); so no ``yield`` of a generator is ever written inside this block."""
        with self._occupancy:
            self._just_selected = False  # a command is sent: the SELECT's counts may be stale
            self._listed = None  # and a CREATE, an APPEND, ... may change a listed status
            try:
                with translated(folder):
                    self._read_ahead(keep)
                    yield
            except ConnectError as exc:
                if isinstance(exc, ThrottledError):
                    raise
                untagged = getattr(self._client._imap, "untagged_responses", {})
                said = " ".join(as_str(b) for b in untagged.get("BYE", []) if b)
                throttled = slow_down(said, "server asks to slow down")
                if throttled is not None:
                    raise throttled from None
                raise

    # -- capabilities -------------------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        return self._caps

    def without_capabilities(self, names: Iterable[str]) -> None:
        """Act as if the server did not offer ``names`` (a provider profile knows better, e.g. that
        Microsoft 365 must not be counted on for MULTIAPPEND or CONDSTORE)."""
        self._caps = self._caps - {name.upper() for name in names}

    @property
    def delimiter(self) -> str:
        return self._delimiter

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self._caps

    @property
    def keeps_bytes(self) -> bool:
        return True  # an IMAP server stores what it is given (see ProfiledAccount for exceptions)

    @property
    def append_limit(self) -> int | None:
        for cap in self._caps:
            name, _, value = cap.partition("=")
            if name == "APPENDLIMIT" and value.isdigit():
                return int(value)
        return None

    @property
    def literal_plus(self) -> bool:
        return "LITERAL+" in self._caps

    @property
    def personal_prefix(self) -> str:
        """The personal namespace's prefix from NAMESPACE (``INBOX.`` on Courier), else ``""``."""
        return self._prefix

    def _find_delimiter(self, personal: Personal | None) -> str:
        """The personal namespace's delimiter (from NAMESPACE, asked with ENABLE: opening.py),
        else LIST's; its prefix is kept in ``_prefix`` on the way."""
        if personal is not None:
            self._prefix = personal[0]
            if personal[1]:
                return personal[1]
        for _flags, delim, _name in self._list("LIST"):
            if delim:
                return delim
        return "/"

    # -- folders ------------------------------------------------------------------------------------
    def list_folders(self) -> list[FolderInfo]:
        # RFC 5258: one LIST says which are subscribed. Special-use flags come only when asked
        # for (RFC 6154), so only where they can be: without, LIST and LSUB as before.
        if {"LIST-EXTENDED", "SPECIAL-USE"} <= self._caps:
            split = functools.cache(_subscription)  # parse_list shares equal flag sets
            return [
                FolderInfo(name, delim, *split(flags))
                for flags, delim, name in self._list_extended()
            ]
        listed = self._list("LIST")
        subscribed = {name for _flags, _delim, name in self._list("LSUB")}
        return [
            FolderInfo(name=name, delimiter=delim, flags=flags, subscribed=name in subscribed)
            for flags, delim, name in listed
        ]

    def _list_extended(self) -> list[ListEntry]:
        """``LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)``, on the raw pipeline: imaplib
        has no call for it. Where LIST-STATUS is offered, the same LIST returns every folder's
        STATUS too (RFC 5819 section 2: STATUS beside other return options), kept for the next
        ``statuses``: a run lists the folders, then asks the statuses of those it maps, and the
        second command, a round trip and the server's second walk of every folder, is saved. A
        server refusing the combination is asked without STATUS."""
        if "LIST-STATUS" in self._caps:
            found: Answers = {}
            option = b" " + status_option(self._status_items())
            entries, _said = self._list_returning(option, found)
            if entries is not None:
                # Kept after the command (``_guard`` drops it when one starts); none at all
                # (a server ignoring the option): ``statuses`` asks LIST-STATUS itself.
                self._listed = found or None
                return entries
        entries, said = self._list_returning(b"", None)
        if entries is None:
            raise FolderError("*", f"LIST failed: {said}")
        return entries

    def _list_returning(
        self, option: bytes, found: Answers | None
    ) -> tuple[list[ListEntry] | None, str]:
        """The LIST with ``option`` added to its return options; None and the server's words if
        it was refused. ``* STATUS`` lines go to ``found`` (with INBOX open: statuses.py)."""
        lines: list[bytes | tuple[bytes, bytes]] = []
        on_status = Collect(found) if found is not None else None

        def keep(line: bytes, literals: list[bytes]) -> None:
            head = line[:9].upper()
            if head[:7] == b"* LIST ":
                rest = line[7:].rstrip(b"\r\n")
                lines.append((rest, literals[0]) if literals else rest)
            elif on_status is not None and head == b"* STATUS ":
                on_status(line, literals)

        command = b'LIST "" "*" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE%s)' % option
        with self._guard():
            # STATUS asked: INBOX opened around the LIST (statuses.py); else the LIST alone.
            close = self._inbox_closer() if found is not None else None
            answers = found if found is not None else {}
            answer = list_inbox_open(
                self._pipeline, command, self._status_items(), keep, close, answers
            )
        if answer.status != "OK":
            return None, answer.text.decode("utf-8", "replace")
        return parse_list(lines), ""

    def _list(self, command: str) -> list[ListEntry]:
        imap = self._client._imap
        with self._guard():
            call = imap.list if command == "LIST" else imap.lsub
            typ, data = call('""', "*")
            if typ != "OK":
                raise FolderError("*", f"{command} failed: {data}")
        return parse_list(data)

    def create_folder(self, name: str) -> None:
        with self._guard(name):
            try:
                self._client.create_folder(name)
            except imapclient.exceptions.IMAPClientError as exc:
                if "ALREADYEXISTS" in str(exc).upper() or self._client.folder_exists(name):
                    return
                raise

    def subscribe(self, name: str) -> None:
        with self._guard(name):
            self._client.subscribe_folder(name)

    def create_folders(self, names: Sequence[str]) -> dict[str, str]:
        """CREATE ``names`` pipelined (``FolderSetup``); a refusal other than "it exists" is asked
        again alone, by ``create_folder``, so its reason (or its throttle) is the usual one."""
        refused: dict[str, str] = {}
        for name in self._pipelined("CREATE", names):
            try:  # this class's own: ``names`` are on the wire already (NamespacedAccount)
                ImapAccount.create_folder(self, name)
            except FolderError as exc:
                refused[name] = exc.reason
        return refused

    def subscribe_folders(self, names: Sequence[str]) -> dict[str, str]:
        """SUBSCRIBE ``names`` pipelined; refusals asked again alone, as for ``create_folders``."""
        refused: dict[str, str] = {}
        for name in self._pipelined("SUBSCRIBE", names):
            try:
                ImapAccount.subscribe(self, name)
            except FolderError as exc:
                refused[name] = exc.reason
        return refused

    def _pipelined(self, command: str, names: Sequence[str]) -> list[str]:
        """``command`` on every name in a few round trips; the names it was refused for."""
        verb = command.encode("ascii")
        with self._guard():
            answers = self._pipeline.commands([b"%s %s" % (verb, quote_mailbox(n)) for n in names])
        return [
            name
            for name, answer in zip(names, answers, strict=True)
            if answer.status != "OK" and b"ALREADYEXISTS" not in answer.text.upper()
        ]

    def status(self, folder: str) -> FolderStatus:
        """SELECT (EXAMINE on a source): its answer carries STATUS's values (RFC 3501 6.3.1,
        RFC 7162 3.1.2.1), and the folder is then selected for the pass that asked, which needs
        it selected anyway. One round trip a folder instead of two, each a WAN round trip. A
        server whose answer lacks UIDVALIDITY or UIDNEXT is asked STATUS."""
        self._select(folder, fresh=True)
        return self._selected_status() or self._status_command(folder)

    def _selected_status(self) -> FolderStatus | None:
        """The selected folder's status from its SELECT (EXAMINE) answer; None without
        UIDVALIDITY or UIDNEXT in it."""
        found = _selected_status(self._select_info)
        if found is None or self.condstore:
            return found
        # A profile that masks CONDSTORE (Microsoft 365) is not counted on for HIGHESTMODSEQ.
        return replace(found, highestmodseq=None)

    def _status_command(self, folder: str) -> FolderStatus:
        imap = self._client._imap
        with self._guard(folder):
            typ, data = imap.status(
                quote_mailbox(folder), f"({' '.join(self._status_items())})"
            )  # bytes: raw names too
            if typ != "OK":
                raise _refusal(folder, data)
        return _folder_status(parse_status(data))

    def statuses(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """Many folders' STATUS in one LIST-STATUS where offered (or from the LIST just before,
        ``_list_extended``), else pipelined (statuses.py). A folder the server gave no answer for
        is left out: its own ``status`` says why."""
        answers, self._listed = self._listed, None  # what the last LIST brought, if still true
        if answers is None:
            items = self._status_items()
            with self._guard():
                if "LIST-STATUS" in self._caps:
                    answers = list_status(self._pipeline, items, close=self._inbox_closer())
                else:
                    answers = pipelined_status(self._pipeline, folders, items)
        found: dict[str, FolderStatus] = {}
        for folder in folders:
            raw = answers.get(wire_name(folder))
            if raw is not None and {b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"} <= raw.keys():
                found[folder] = _folder_status(raw)
        return found

    def _inbox_closer(self) -> bytes | None:
        """How a LIST-STATUS closes the INBOX it opens first (statuses.py), None when a folder
        is selected: that LIST is sent alone. Asked inside ``_guard``, after what was written
        ahead (which may select a folder) is read."""
        if self._selected is not None:
            return None
        return b"UNSELECT" if "UNSELECT" in self._caps else b"CLOSE"

    def _status_items(self) -> list[str]:
        items = ["UIDVALIDITY", "UIDNEXT", "MESSAGES"]
        if self.condstore:
            items.append("HIGHESTMODSEQ")
        return items

    def _select(self, folder: str, *, fresh: bool = False) -> dict[bytes, Any]:
        """SELECT (EXAMINE) ``folder`` unless it is selected; ``fresh`` selects it again, for a
        message count that is not stale (appends since the last SELECT are not in it)."""
        if self._selected == folder and (not fresh or self._just_selected):
            return self._select_info
        self._selected = None  # a SELECT refused leaves no folder selected (RFC 3501 6.3.1)
        with self._guard(folder):
            self._select_info = self._client.select_folder(folder, readonly=self._readonly)
        self._selected = folder
        self._just_selected = True  # no command since: as fresh as a SELECT sent now
        return self._select_info

    def permanent_flags(self, folder: str) -> frozenset[str]:
        info = self._select(folder)
        flags = info.get(b"PERMANENTFLAGS")
        if flags is None:  # RFC 3501: no PERMANENTFLAGS means every flag is permanent
            return frozenset({"\\*"})
        return frozenset(as_str(f) for f in flags)

    # -- reading ------------------------------------------------------------------------------------
    def _fetch(
        self, folder: str, message_set: str, items: Sequence[str], *, uids: bool, modifier: str = ""
    ) -> list[FetchRow]:
        """One FETCH (``UID FETCH`` when ``uids``), through imaplib's public ``fetch``/``uid``."""
        imap = self._client._imap
        spec = "(" + " ".join(items) + ")"
        with self._guard(folder):
            if uids:
                extra = [f"({modifier})"] if modifier else []
                typ, data = imap.uid("FETCH", message_set, spec, *extra)
            else:
                typ, data = imap.fetch(message_set, spec)
            if typ != "OK":
                raise _refusal(folder, data)
            return list(parse_rows(data))

    def _fetch_uids(
        self, folder: str, uids: Sequence[int], items: Sequence[str]
    ) -> dict[int, dict[str, Any]]:
        """``UID FETCH`` of these UIDs, in as many commands as the UID set needs to stay a short
        command line (sparse UIDs do not compress into ranges); rows of other messages (pushed by
        the server) left out."""
        wanted = set(uids)
        found: dict[int, dict[str, Any]] = {}
        for piece in uid_sets(wanted):
            rows = self._fetch(folder, piece, ["UID", *items], uids=True)
            found.update(by_uid(rows, uids=wanted))
        return found

    def _listing(self, folder: str, items: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every message of ``folder``, in sequence ranges of ``META_CHUNK``: no answer grows with
        the folder (a ``SEARCH ALL`` of 200,000 UIDs is over imaplib's 1 MB line limit).

        Only non-UID FETCH commands are sent, during which a server may not announce expunges
        (RFC 3501 7.4.1), so the sequence numbers hold still from the SELECT to the last range. A
        range that comes back short is an error, never a smaller folder: whoever reads this listing
        (lost-state matching) would otherwise copy again what it failed to see.
        """
        exists = int(self._select(folder, fresh=True).get(b"EXISTS", 0))
        for start in range(1, exists + 1, META_CHUNK):
            end = min(start + META_CHUNK - 1, exists)
            rows = self._fetch(folder, f"{start}:{end}", ["UID", *items], uids=False)
            found = by_uid(rows, seqs=range(start, end + 1))
            if len(found) != end - start + 1:
                raise FolderError(
                    folder,
                    f"the server listed {len(found)} of messages {start}:{end}; "
                    "an incomplete listing is not trusted",
                )
            yield from sorted(found.items())

    def fetch_meta(
        self, folder: str, uids: Sequence[int] | None = None, *, message_ids: bool = False
    ) -> Iterator[MessageMeta]:
        items = [*META_ITEMS, MESSAGE_ID_ITEM] if message_ids else META_ITEMS
        for uid, row in self._meta_rows(folder, uids, items):
            if "INTERNALDATE" not in row or "RFC822.SIZE" not in row:
                if uids is None:
                    raise FolderError(folder, f"the server sent no date or size for UID {uid}")
                continue  # expunged meanwhile: the caller notices the gap
            yield _meta(uid, row, message_ids=message_ids)

    def send_listing(self, folder: str) -> None:
        """Write ``status_with_listing``'s EXAMINE and FETCH now, for the pass that asks for them
        later (``ListingAhead``): their round trip overlaps what the run does meanwhile. Any
        other command on this session reads their answers first."""
        if not self._readonly or self._ahead:
            return
        self._selected = None  # the EXAMINE selects it, or (refused) nothing
        with self._guard(folder):
            self._ahead.append(send_examine_and_list(self._pipeline, folder, LISTING_ITEMS))

    def _read_ahead(self, keep: Sent | SentBodies | None = None) -> None:
        """The answers to what was written ahead, read before another command goes out: all of
        them, or those written before ``keep`` (which is then taken off the queue, its answers
        for the caller to read)."""
        while self._ahead:
            sent = self._ahead.popleft()
            if sent is keep:
                return
            if isinstance(sent, SentBodies):
                self._bodies(sent)  # a burst not taken after all: its rows dropped
            else:
                self._examined(sent)

    def _examined(self, sent: Sent) -> Examined:
        """The answers to ``sent``, read; its folder selected if the EXAMINE was."""
        found = read_examined(self._pipeline, sent)
        if found.examine is not None and found.examine.status == "OK":
            imap = self._client._imap
            imap.state, imap.is_readonly = "SELECTED", True  # as imaplib's own EXAMINE leaves it
            self._selected, self._select_info = sent.folder, found.info
        return found

    def status_with_listing(self, folder: str) -> tuple[FolderStatus, list[MessageMeta] | None]:
        """``status`` and, in the same round trip, every message's metadata with its Message-ID
        (examine.py), for a small folder a first pass is about to list; None when the answer is
        not a whole listing. A target is selected read-write by ``status`` alone. The commands
        may have been written already (``send_listing``)."""
        if not self._readonly:  # this class's own: ``folder`` is on the wire already
            return ImapAccount.status(self, folder), None
        ahead = next((s for s in self._ahead if isinstance(s, Sent) and s.folder == folder), None)
        self._selected = None
        with self._guard(folder, keep=ahead):  # which reads what was asked before it
            found = self._examined(
                ahead or send_examine_and_list(self._pipeline, folder, LISTING_ITEMS)
            )
        if found.examine is None or found.examine.status != "OK":
            text = found.examine.text if found.examine is not None else b""
            raise _refusal(folder, [text])
        status = self._selected_status()
        if status is None:
            return self._status_command(folder), None
        if found.fetch is not None and found.fetch.status != "OK":
            said = found.fetch.text.decode("utf-8", "replace")  # the listing's own refusal:
            throttled = slow_down(said, "server asks to slow down")  # a cap or a throttle
            if throttled is not None:  # is honoured as the listing's FETCH would honour it
                raise throttled
        rows = found.listing()
        if rows is None or any(
            "INTERNALDATE" not in r or "RFC822.SIZE" not in r for r in rows.values()
        ):
            return status, None
        return status, [_meta(uid, row, message_ids=True) for uid, row in sorted(rows.items())]

    def _meta_rows(
        self, folder: str, uids: Sequence[int] | None, items: Sequence[str]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        if uids is None:
            yield from self._listing(folder, items)
            return
        if isinstance(uids, range) and uids.step == 1 and len(uids) > META_CHUNK:
            # A window of UIDs (windows.py): one ``UID FETCH lo:hi``, never a set of every UID
            # in it (a sparse folder's window may span millions of UIDs and hold a window's worth).
            self._select(folder)
            low, high = uids.start, uids.stop - 1
            rows = self._fetch(folder, f"{low}:{high}", ["UID", *items], uids=True)
            found = {u: r for u, r in by_uid(rows).items() if low <= u <= high}
            yield from sorted(found.items())
            return
        wanted = sorted(set(uids))
        self._select(folder)
        for start in range(0, len(wanted), META_CHUNK):
            yield from sorted(
                self._fetch_uids(folder, wanted[start : start + META_CHUNK], items).items()
            )

    def fetch_flags(
        self, folder: str, changed_since: int | None = None
    ) -> Iterator[tuple[int, frozenset[str]]]:
        if changed_since is None:
            for uid, row in self._listing(folder, ["FLAGS"]):
                yield uid, _flags(row.get("FLAGS", ()))
            return
        info = self._select(folder, fresh=True)
        if int(info.get(b"EXISTS", 0)) == 0:
            return
        rows = self._fetch(
            folder, "1:*", ["UID", "FLAGS"], uids=True, modifier=f"CHANGEDSINCE {changed_since}"
        )
        for uid, row in sorted(by_uid(rows, having="FLAGS").items()):
            yield uid, _flags(row.get("FLAGS", ()))

    def uid_marks(self, folder: str, every: int) -> list[int]:
        """The UIDs of messages ``every``, ``2 * every``... by sequence number, in FETCH commands
        of a few hundred numbers (a million-message folder: 200 numbers, one round trip)."""
        exists = int(self._select(folder, fresh=True).get(b"EXISTS", 0))
        positions = list(range(every, exists + 1, every))
        marks: list[int] = []
        for start in range(0, len(positions), MARKS_PER_FETCH):
            piece = positions[start : start + MARKS_PER_FETCH]
            rows = self._fetch(folder, ",".join(map(str, piece)), ["UID"], uids=False)
            marks.extend(by_uid(rows, seqs=range(piece[0], piece[-1] + 1)))
        return sorted(marks)

    def count_changed(self, folder: str, since: int) -> int | None:
        """Messages changed since mod-sequence ``since`` (changes.py); None where the server
        cannot count them (no ESEARCH, or no CONDSTORE counted on)."""
        if not self.condstore or "ESEARCH" not in self._caps:
            return None
        self._select(folder, fresh=True)  # the count is of the folder as it is now
        with self._guard(folder):
            return count_changed(self._pipeline, since)

    def send_bodies(self, folder: str, metas: Sequence[MessageMeta]) -> bool:
        """Write the FETCH of these messages' bodies now, for ``fetch_messages`` to read later
        (bodies.py); False when it was not written: messages fetched in parts, more than one
        FETCH's worth, the folder not selected, or two bursts asked ahead already."""
        if (
            not metas
            or len(self._ahead) >= AHEAD_BURSTS
            or self._selected != folder
            or any(m.size > PARTIAL_CHUNK for m in metas)
            or sum(m.size for m in metas) > BODY_BATCH_BYTES
        ):
            return False
        # Written behind what is in flight, nothing read here: not ``_guard``, which reads it.
        with self._occupancy, translated(folder):
            self._ahead.append(send_bodies(self._pipeline, folder, _uids(metas)))
        return True

    def fetch_messages(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        """Small messages many per FETCH; large ones in partial chunks spooled to disk. The
        FETCH may have been written already (``send_bodies``)."""
        uids = _uids(metas)
        ahead = next(
            (s for s in self._ahead if isinstance(s, SentBodies) and s.key == (folder, uids)),
            None,
        )
        if ahead is not None:
            yield from self._bodies_ahead(ahead, metas)
            return
        self._select(folder)
        group: list[MessageMeta] = []
        group_bytes = 0
        for meta in sorted(metas, key=lambda m: m.uid):
            if meta.size > PARTIAL_CHUNK:
                yield from self._fetch_group(folder, group)
                group, group_bytes = [], 0
                fetched = self._fetch_large(folder, meta)
                if fetched is not None:
                    yield fetched
                continue
            if group and group_bytes + meta.size > BODY_BATCH_BYTES:
                yield from self._fetch_group(folder, group)
                group, group_bytes = [], 0
            group.append(meta)
            group_bytes += meta.size
        yield from self._fetch_group(folder, group)

    def _bodies_ahead(
        self, sent: SentBodies, metas: Sequence[MessageMeta]
    ) -> Iterator[FetchedMessage]:
        """``fetch_messages`` of a burst whose FETCH was written ahead: its answers read now."""
        with self._guard(sent.folder, keep=sent):
            refused, rows = self._bodies(sent)
        if refused is not None:
            raise _refusal(sent.folder, [refused])
        yield from _fetched(sorted(metas, key=lambda m: m.uid), rows)

    def _bodies(self, sent: SentBodies) -> tuple[bytes | None, dict[int, dict[str, Any]]]:
        """The answers to ``sent`` (taken off the queue): the text of a refusal, if any, and
        its rows; rows of the bursts still asked ahead are kept for them (bodies.py)."""
        found = read_bodies(self._pipeline, sent)
        later = [s for s in self._ahead if isinstance(s, SentBodies)]
        rows = self._stash.file(found, sent, later)
        refused = found.refused()
        return (refused.text if refused is not None else None), rows

    def _fetch_group(self, folder: str, group: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        if not group:
            return
        rows = self._fetch_uids(folder, [m.uid for m in group], ["BODY.PEEK[]"])
        yield from _fetched(group, rows)

    def _fetch_large(self, folder: str, meta: MessageMeta) -> FetchedMessage | None:
        """A message over ``PARTIAL_CHUNK`` in parts, spooled (to disk past ``SPOOL_IN_MEMORY``)
        as they come, each part asked for before the one before it is read (bodies.py)."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - handed to the caller
        digest = hashlib.sha256()

        def write(part: bytes) -> None:
            spool.write(part)
            digest.update(part)

        try:
            with self._guard(folder):
                size, refused = fetch_in_parts(self._pipeline, meta.uid, PARTIAL_CHUNK, write)
        except BaseException:
            spool.close()
            raise
        if refused is not None:
            spool.close()
            raise _refusal(folder, [refused.text])
        if size == 0:  # expunged meanwhile: the caller notices the gap
            spool.close()
            return None
        spool.seek(0)
        return FetchedMessage(meta.uid, size, digest.hexdigest(), spool)  # type: ignore[arg-type]

    # -- writing ------------------------------------------------------------------------------------
    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        # This class's own: ``folder`` is on the wire already when a subclass calls this one.
        return ImapAccount.send_batch(self, folder, requests)()

    def send_batch(
        self, folder: str, requests: Sequence[AppendRequest]
    ) -> Callable[[], list[AppendResult]]:
        """Write the APPENDs now, read their answers when the returned call is made
        (``AppendPipelining``): the next burst can go out before this one is answered."""
        if self._readonly:
            raise FolderError(folder, "refusing to write to the source account")
        if not self.literal_plus:  # a synchronising literal waits for the server anyway
            with self._guard(folder):
                results = [self._pipeline.append_synchronous(folder, r) for r in requests]
            return lambda: results
        multi = "MULTIAPPEND" in self._caps and len(requests) > 1
        with self._guard(folder):
            sent = self._pipeline.send_appends(folder, requests, multi=multi)

        def answers() -> list[AppendResult]:
            with self._guard(folder):
                results = self._pipeline.read_appends(sent)
                if results is not None:
                    return results
                for request, start in zip(requests, sent.starts, strict=True):
                    request.body.seek(start)  # refused as a whole: find the culprit one by one
                return self._pipeline.append_pipelined(folder, requests)

        return answers

    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        if self._readonly:
            raise FolderError(folder, "refusing to write to the source account")
        self._select(folder)
        by_flags: dict[frozenset[str], list[int]] = {}
        for uid, flags in updates:
            by_flags.setdefault(flags, []).append(uid)
        with self._guard(folder):
            for flags, uids in by_flags.items():
                encoded = [f.encode("utf-8", "surrogateescape") for f in sorted(flags)]
                for piece in uid_sets(uids):
                    self._client.set_flags(piece, encoded, silent=True)

    def close(self) -> None:
        """LOGOUT, and the socket closed without waiting for the BYE and the OK: the run has read
        every answer it needs, and waiting is a round trip per session over a WAN. A session whose
        peer has hung up already is closed all the same, quietly."""
        with contextlib.suppress(OSError, MailferryError):
            self._pipeline.send(b"%s LOGOUT\r\n" % self._pipeline.next_tag())
        self._client._imap.state = "LOGOUT"
        with contextlib.suppress(OSError):
            self._client.shutdown()


def _flags(raw: Sequence[Any]) -> frozenset[str]:
    return _flag_set(tuple(raw))


@functools.lru_cache(maxsize=4096)
def _flag_set(raw: tuple[Any, ...]) -> frozenset[str]:
    """One frozenset per combination of flags, shared: a folder has few combinations and many
    messages (a set of its own per message was ~200 bytes: 20 MB a 100,000-message folder)."""
    return frozenset(as_str(f) for f in raw if as_str(f).lower() != "\\recent")


def _subscription(flags: frozenset[str]) -> tuple[frozenset[str], bool]:
    """A LIST-EXTENDED answer's attributes without ``\\Subscribed`` (however the server cased it),
    and whether it was one of them."""
    rest = frozenset(f for f in flags if f.lower() != "\\subscribed")
    return rest, len(rest) < len(flags)


def _folder_status(raw: dict[bytes, int]) -> FolderStatus:
    modseq = raw.get(b"HIGHESTMODSEQ")
    return FolderStatus(
        uidvalidity=int(raw[b"UIDVALIDITY"]),
        uidnext=int(raw[b"UIDNEXT"]),
        exists=int(raw[b"MESSAGES"]),
        highestmodseq=int(modseq) if modseq is not None else None,
    )


def _meta(uid: int, row: dict[str, Any], *, message_ids: bool) -> MessageMeta:
    return MessageMeta(
        uid=uid,
        flags=_flags(row.get("FLAGS", ())),
        internaldate=_internaldate(row["INTERNALDATE"]),
        size=int(row["RFC822.SIZE"]),
        message_id=normalise_message_id(row.get(MESSAGE_ID)) if message_ids else None,
    )


def _selected_status(info: dict[bytes, Any]) -> FolderStatus | None:
    """The STATUS values of a SELECT's answer, None without UIDVALIDITY or UIDNEXT (servers
    before RFC 3501 may leave them out). HIGHESTMODSEQ comes once CONDSTORE is enabled;
    ``[NOMODSEQ]`` leaves it None, as STATUS would."""
    if b"UIDVALIDITY" not in info or b"UIDNEXT" not in info:
        return None
    modseq = info.get(b"HIGHESTMODSEQ")
    return FolderStatus(
        uidvalidity=int(info[b"UIDVALIDITY"]),
        uidnext=int(info[b"UIDNEXT"]),
        exists=int(info.get(b"EXISTS", 0)),
        highestmodseq=int(modseq) if modseq is not None else None,
    )


def _uids(metas: Sequence[MessageMeta]) -> tuple[int, ...]:
    return tuple(sorted(m.uid for m in metas))


def _fetched(
    group: Sequence[MessageMeta], rows: dict[int, dict[str, Any]]
) -> Iterator[FetchedMessage]:
    """The messages of ``group`` whose bodies are in ``rows``, in the group's order."""
    for meta in group:
        body = rows.get(meta.uid, {}).get(BODY)
        if body is None:
            continue  # expunged meanwhile: the caller notices the gap
        yield FetchedMessage(
            meta.uid, len(body), hashlib.sha256(body).hexdigest(), io.BytesIO(body)
        )


def _refusal(folder: str, data: Sequence[Any]) -> MailferryError:
    """A NO to a command on ``folder``: a request to slow down, or the folder's failure."""
    said = _said(data)
    return slow_down(said, "server asks to slow down") or FolderError(folder, said)


def _said(data: Sequence[Any]) -> str:
    return " ".join(as_str(d) for d in data if d is not None) or "refused"
