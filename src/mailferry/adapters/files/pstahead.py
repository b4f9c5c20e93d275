"""A folder's attachments read ahead, by threads with libpff handles of their own; a whole
folder measured ahead (``ListedAhead``).

Measuring a PST message for planning through libpff reads its attachments (libpff loads an
attachment's data whenever it is opened, ~100 MB/s; an ANSI PST or an OST: a Unicode PST's are read
by ``pstnodes``, which measures without reading them): for a folder of mail with attachments that
was most of its planning, one item after another, while the email and MIME work waited. libpff lets
go of the GIL while it reads, so two threads read the next items' attachments (every second item
each) while the planner measures this one. Each opens the file again (a libpff handle is not shared
between threads) and hands out plain bytes and strings only. Bounded for the process (``Budget``: a
run's lanes each measure a folder at once): a reader stops while ``AHEAD_LIMIT`` bytes wait in all
(one item of its own at least). Whatever it could not read, or did not read in time, the planner
reads itself as before (so a damaged item fails where it always did).

``ListedAhead`` measures a whole folder (its listing for planning) on a thread, for the run to
take later (``PstAccount.send_listing``): the run asks it for the folder it plans first while the
target's folders are created and their statuses read, a fixed cost of every run that a PST's
measuring (most of its reading) can hide behind.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mailferry.adapters.files import pstcodepage, pstmail

if TYPE_CHECKING:
    from mailferry.adapters.files.pstmail import Attachment

AHEAD_LIMIT = 8 << 20  # bytes of attachments read ahead and not yet taken, in the process
READERS = 2  # threads (libpff handles), each reading every second item
T = TypeVar("T")


class Budget:
    """Bytes read ahead and not yet taken, for all the readers that share it (one condition
    for them all: a reader waits for room that any other's taking makes)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.turn = threading.Condition()


SHARED = Budget(AHEAD_LIMIT)


class ListedAhead(Generic[T]):
    """``measure(stop)`` of ``folder`` run on a thread of its own; ``take`` waits for what it
    found (None: it failed, or was stopped: the pass lists the folder itself and meets the error
    there), ``close`` stops it at its next item and waits."""

    def __init__(self, folder: str, measure: Callable[[threading.Event], T | None]) -> None:
        self.folder = folder
        self._stop = threading.Event()
        self._found: T | None = None
        self._thread = threading.Thread(
            target=self._run, args=(measure,), name="pst-listing-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, measure: Callable[[threading.Event], T | None]) -> None:
        try:
            self._found = measure(self._stop)
        except (OSError, ValueError):
            self._found = None

    def take(self) -> T | None:
        self._thread.join()
        found, self._found = self._found, None
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._found = None


class ReadAhead:
    """The attachments of ``indices`` (items of the folder at ``route`` in the PST ``path``,
    ascending); ``take`` them in the same order, ``close`` when done."""

    def __init__(
        self,
        path: Path,
        route: Sequence[int],
        indices: Sequence[int],
        limit: int | None = None,  # a budget of its own of so many bytes
        readers: int = READERS,
        budget: Budget | None = None,  # a budget shared with others; else the process's
    ) -> None:
        budget = Budget(limit) if limit is not None else budget or SHARED
        self._readers = [_Reader(path, route, indices[n::readers], budget) for n in range(readers)]
        self._order = {index: n % readers for n, index in enumerate(indices)}

    def take(self, index: int) -> list[Attachment] | None:
        """The attachments of item ``index`` (the next one asked for), or None: read it yourself."""
        reader = self._order.get(index)
        return None if reader is None else self._readers[reader].take(index)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()


class _Reader:
    """One thread reading the attachments of ``indices`` in order, on a handle of its own."""

    def __init__(
        self, path: Path, route: Sequence[int], indices: Sequence[int], budget: Budget
    ) -> None:
        self._path, self._route, self._budget = path, tuple(route), budget
        self._ready: deque[tuple[int, list[Attachment] | None]] = deque()
        self._done = False
        self._closed = False
        self._turn = budget.turn
        self._thread = threading.Thread(
            target=self._run, args=(list(indices),), name="pst-read-ahead", daemon=True
        )
        self._thread.start()

    def take(self, index: int) -> list[Attachment] | None:
        """Item ``index``'s attachments; the items before it that were not asked for (the
        planner could not open them) are dropped. None: not read here."""
        with self._turn:
            while True:
                while not self._ready and not self._done:
                    self._turn.wait()
                if not self._ready or self._ready[0][0] > index:
                    return None
                head, found = self._ready.popleft()
                self._budget.held -= _size(found)
                self._turn.notify_all()
                if head == index:
                    return found

    def close(self) -> None:
        with self._turn:
            self._closed = True
            while self._ready:  # what was read and not taken leaves the budget
                self._budget.held -= _size(self._ready.popleft()[1])
            self._turn.notify_all()
        self._thread.join()

    def _run(self, indices: list[int]) -> None:
        import pypff  # noqa: PLC0415 - only PST sources need libpff

        pff = pypff.file()
        try:
            pff.open(str(self._path))
        except OSError:
            self._finish()
            return
        try:
            folder = pff.root_folder
            for step in self._route:
                folder = folder.get_sub_folder(step)
            for index in indices:
                found = _attachments(folder, index)
                if not self._hand(index, found):
                    return
        except OSError:
            pass  # the planner reads what is missing itself, and meets the error there
        finally:
            self._finish()
            pff.close()

    def _finish(self) -> None:
        with self._turn:
            self._done = True
            self._turn.notify_all()

    def _hand(self, index: int, found: list[Attachment] | None) -> bool:
        """Queue ``found``, waiting for room; False once closed."""
        size = _size(found)
        with self._turn:
            budget = self._budget
            while not self._closed and self._ready and budget.held + size > budget.limit:
                self._turn.wait()
            if self._closed:
                return False
            self._ready.append((index, found))
            budget.held += size
            self._turn.notify_all()
            return True


def _attachments(folder: Any, index: int) -> list[Attachment] | None:
    try:
        item = folder.get_sub_message(index)
        count = item.number_of_attachments
        codec = pstcodepage.declared(pstmail.properties(item)) if count else None
        return [pstmail.attachment(item.get_attachment(i), codec) for i in range(count)]
    except (OSError, ValueError):
        return None  # damaged: the planner reads it and reports it


def _size(found: list[Attachment] | None) -> int:
    return sum(attachment.size for attachment in found or ())
