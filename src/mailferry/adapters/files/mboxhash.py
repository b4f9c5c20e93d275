"""The content hashes of an mbox scan, computed on a second thread.

Hashing the bodies is most of what a scan costs (BLAKE2b runs at a third of the speed of counting
line ends). ``hashlib`` lets go of the GIL while it hashes a large buffer, so the scan hands its
body chunks to one worker thread and goes on finding separators and counting line ends: on two
cores the scan takes about as long as the hashing alone. The worker feeds the hashes in the order
given (one thread, first in first out); each message's record goes into the listing digest in
file order, so the UIDVALIDITY is what hashing in line gives. At most ``DEPTH`` batches of
``BATCH`` bytes wait for the worker: memory stays flat whatever the file's size.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

BATCH = 4 << 20  # bytes handed to the worker at a time
DEPTH = 2  # batches waiting at most; then the scan waits for the oldest


def _hash(work: list[tuple[Any, bytes]], ends: list[tuple[bytes, Any]]) -> list[bytes]:
    for content, chunk in work:
        content.update(chunk)
    return [prefix + content.digest() + b"\n" for prefix, content in ends]


class Hashing:
    """Feeds body chunks to their message's hash on a worker; ``close`` returns when all are in
    ``listing`` (call it in a ``finally``: it also stops the worker)."""

    def __init__(self, listing: Any) -> None:
        self.listing = listing
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mbox-hash")
        self._work: list[tuple[Any, bytes]] = []
        self._ends: list[tuple[bytes, Any]] = []
        self._size = 0
        self._queued: deque[Future[list[bytes]]] = deque()

    def feed(self, content: Any, chunk: bytes) -> None:
        """Add ``chunk`` to the hash ``content`` (in the order fed)."""
        self._work.append((content, chunk))
        self._size += len(chunk)
        if self._size >= BATCH:
            self._submit()

    def message(self, prefix: bytes, content: Any) -> None:
        """The message is whole: ``prefix`` and its hash go into the listing digest, in order."""
        self._ends.append((prefix, content))
        if len(self._ends) >= BATCH >> 10:  # many small messages: a batch every 4,096
            self._submit()

    def close(self) -> None:
        try:
            self._submit()
            while self._queued:
                self._settle()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self) -> None:
        if self._work or self._ends:
            self._queued.append(self._pool.submit(_hash, self._work, self._ends))
            self._work, self._ends, self._size = [], [], 0
        while len(self._queued) > DEPTH:
            self._settle()

    def _settle(self) -> None:
        for record in self._queued.popleft().result():
            self.listing.update(record)
