"""One thread at a time inside a session's I/O: checked at each command, never waited for.

An imaplib connection is one stream of commands and answers. Two threads' commands on it read
each other's answers: one takes the other's, and the other then waits for an answer that was read
already, until its timeout (a lane opened for a shared pass waited out 120 s so: windows.py).
``Occupancy`` makes the session refuse such use at once, with ``ConcurrentUseError``, before the
second thread has written anything. The real IMAP session (``adapters/imap/account.py``) and the
memory fake (``adapters/memory/account.py``) take the same one, so that what the unit tests run
on the fake is refused where the real session would refuse it.

What is checked: that no two threads are *inside* the session's I/O at the same moment, never
which thread used it last. The run hands a session from thread to thread, always one after the
other: a lane's thread plans a folder, then ``Prefetch``'s reading thread fetches its bursts (and
may ask for the next folder's listing ahead), then the lane's thread takes the session back once
``Prefetch.close`` has joined the reader; ``both`` reads the source's statuses on a thread of its
own and joins it; ``open_pairs`` opens sessions on threads that end before they are used. None
of these is two threads inside at once, so none is refused.

Why a generator cannot raise a false alarm: a command holds the session only while it writes
and reads (``ImapAccount._guard``, ``send_bodies``), never across a ``yield``. The FETCH streams
(``fetch_meta``, ``fetch_messages``, ``fetch_flags``) read each answer whole inside a command and
yield its rows after leaving it, so a generator suspended between rows (taken over by the reading
thread, left half-read when a copy stops, closed later by the garbage collector on any thread)
holds nothing; each step that does I/O checks afresh. ``tests/unit/test_session_threads.py``
holds that no ``yield`` is ever written inside a ``_guard``.

Never waited for: a blocking lock would hide the defect (two threads taking turns still change
the folder selected under each other) or make it a wait. The check costs a non-blocking acquire
and a release (about a microsecond, measured) once a command, not once a message. The same thread entering again is let through (a depth count), so a command may
call another. ``close`` is not checked: it is teardown, after the run has joined its threads; were
one still inside (a run interrupted), the closed socket fails its read at once (a ConnectError),
which is what a refusal would have achieved, without masking the interruption.
"""

from __future__ import annotations

import threading

from mailferry.domain.errors import ConcurrentUseError


class Occupancy:
    """``with occupancy:`` around a session's I/O; a second thread entering meanwhile raises
    ``ConcurrentUseError`` at once."""

    __slots__ = ("_depth", "_holder", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: threading.Thread | None = None  # only its own thread ever sets it to itself
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.current_thread()
        if self._holder is me:  # a command inside a command, on the same thread
            self._depth += 1
            return
        if not self._lock.acquire(blocking=False):
            holder = self._holder  # None for a moment, between another's acquire and this line
            raise ConcurrentUseError(holder.name if holder else "another thread", me.name)
        self._holder, self._depth = me, 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if not self._depth:
            self._holder = None
            self._lock.release()
