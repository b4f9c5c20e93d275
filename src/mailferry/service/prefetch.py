"""Reading ahead: the next burst is fetched from the source while the target stores this one.

A burst used to be fetch-all, then append-all, then commit: over a WAN each side waited for the
other, and a folder's source session sat idle while its target session wrote (and the other way
round). ``Prefetch`` runs the fetching on a thread of its own, one burst ahead of the writing.

Why this is safe:
- the source session is used by the reading thread only, from the first item to ``close()``,
  which joins that thread: nothing else touches the source during a folder's copy phase, and the
  session is idle again before the run plans the next folder, reconnects or logs out (or has
  that next folder's listing asked ahead, ``ListingAhead.send_listing``, whose answer the
  session reads before any other command);
- at most two bursts are alive (the one being written, the one being read): memory stays bounded
  by twice the burst's bytes, and a message larger than a spool threshold is on disk anyway;
- nothing is promised for a burst read ahead: its intents are committed by the writer, as before,
  just before its APPENDs are sent. A burst read but never written is closed by ``close()``, and
  the next pass plans its messages again.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from mailferry.domain.errors import ThrottledError

T = TypeVar("T")


@dataclass
class _Raised:
    error: BaseException


_DONE = object()


class Prefetch(Generic[T]):
    """Iterate ``items`` one ahead on a thread; ``discard`` frees an item read but not taken.

    Use as a context manager: leaving it stops the reading thread and waits for it.
    """

    def __init__(self, items: Iterator[T], discard: Callable[[T], None]) -> None:
        self._items = items
        self._discard = discard
        self._ready: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slot = threading.Semaphore(1)  # reading may start once the item before was taken
        self._stop = threading.Event()
        # The reader logs with the caller's context (pair, folder): a copy of it, for its thread.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._read,), daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        while True:
            got = self._ready.get()
            if got is _DONE:
                return
            if isinstance(got, _Raised):
                raise got.error
            self._slot.release()  # the reader may go on while this item is written
            yield got  # type: ignore[misc]  # only items of T are put besides the markers

    def close(self) -> None:
        """Stop reading, wait for the reader, free what it read that nobody took."""
        self._stop.set()
        self._slot.release()  # a reader waiting for its slot wakes and sees the stop
        self._thread.join()
        while not self._ready.empty():
            got = self._ready.get()
            if got is not _DONE and not isinstance(got, _Raised):
                self._discard(got)  # type: ignore[arg-type]

    def _read(self) -> None:
        try:
            while True:
                self._slot.acquire()
                if self._stop.is_set():
                    break
                item = next(self._items, _DONE)
                if item is _DONE:
                    break
                self._ready.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer's thread, raised there
            self._ready.put(_Raised(exc))
        self._ready.put(_DONE)


U = TypeVar("U")


def both(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """``first()`` here and ``second()`` on a thread, at the same time: two round trips on two
    sessions (a folder's source and target) cost one. Both have ended when this returns, so
    neither session is still in use. An error is raised as it came; when both fail, the one
    that asks to wait longer (``_slower``), else the first's."""
    results: list[U] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(second())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    try:
        value = first()
    except BaseException as exc:  # noqa: BLE001 - raised again, or the other side's error
        thread.join()
        raise _slower(exc, errors[0]) if errors else exc from None
    thread.join()
    if errors:
        raise errors[0]
    return value, results[0]


def _slower(first: BaseException, second: BaseException) -> BaseException:
    """Of two sides refused at once, the one that asks to wait longer (a throttle's backoff
    paces the retry); else the first."""
    if isinstance(second, ThrottledError) and (
        not isinstance(first, ThrottledError) or second.wait > first.wait
    ):
        return second
    return first
