"""One big folder's first pass copied over several sessions at once.

A run shares folders out over ``--connections`` lanes; an account whose mail is mostly one big
folder (a shared mailbox, an archive, a ticket inbox of a million messages) left all lanes but one
idle once the small folders were done, and one target session stores one message at a time: on
Dovecot the target's IMAP process, not mailferry, set the pace. Now such a pass is a ``SharedPass``:
its windows (``windows.SharedSpans``) are handed out to its own lane and to any lane that has no
folder left (``Migration._drain``), or, when the run has a single lane, to helper lanes opened for
the pass within the same connection cap. Each lane lists, plans and copies its windows on its own
source and target sessions.

Why the guarantees hold:
- the pass was marked STARTED by its own lane before any window is handed out, and only that lane
  writes the checkpoint that completes it, once every lane that joined has left;
- every lane commits its intents before its APPENDs, as one lane does. An intent's UIDNEXT is a
  lower bound of its own APPEND's UID whichever session stored messages before (UIDs only grow),
  and a crash is settled by identity, each target message used once (planning.py);
- windows are disjoint ranges of source UIDs, so no two lanes plan or record the same message;
- a lane that fails (a dropped connection, a full target, a stop) ends the hand-out: the others
  finish the window they have and settle what they have in flight, and the failure is raised on
  the pass's own lane as if it had happened there: the run reconnects and plans the folder again
  from the state, as it does for one lane.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

from mailferry.domain.model import Summary
from mailferry.logs import get_logger
from mailferry.service.copying import FolderCopy
from mailferry.service.folderwork import FolderWork
from mailferry.service.planning import FolderPlanner

log = get_logger("mailferry.lanes")
MIN_WINDOWS = 2  # windows left after the first, for another lane to be worth joining


class SharedPass:
    """A first pass whose windows other lanes may take, until its own lane closes it."""

    def __init__(self, work: FolderWork) -> None:
        self.work = work
        self._changed = threading.Condition()
        self._open = True
        self._active = 0
        self._copies: list[FolderCopy] = []  # of the lanes that left
        self._absorb: list[Summary] = []  # summaries no run counts otherwise (opened helpers)
        self._error: BaseException | None = None

    def join(self) -> bool:
        """A lane asks to copy windows of this pass: yes while it is open with windows left."""
        spans = self.work.spans
        with self._changed:
            if not self._open or spans is None or spans.left < MIN_WINDOWS:
                return False
            self._active += 1
            return True

    def help(
        self, copy: FolderCopy, planner: FolderPlanner, absorb: Summary | None
    ) -> BaseException | None:
        """Copy windows (on the joined lane's sessions: ``copy``, ``planner``) until none is
        left; ``absorb``: the summary to add to the pass's lane's (else the lane's own run
        counts it). Returns this lane's failure, if it failed (raised on the pass's lane)."""
        error: BaseException | None = None
        try:
            copy.copy_parts(self.work, planner.windows.walk(self.work))
        except BaseException as exc:  # noqa: BLE001 - raised on the pass's own lane (finish)
            error = exc
            log.warning("lane.failed", folder=self.work.mapping.source.name, reason=str(exc))
            self.stop_handing_out()
        with self._changed:
            self._copies.append(copy)
            if absorb is not None:
                self._absorb.append(absorb)
            self._error = self._error or error
            self._active -= 1
            self._changed.notify_all()
        return error

    def stop_handing_out(self) -> None:
        if self.work.spans is not None:
            self.work.spans.close()

    def finish(self, copy: FolderCopy, *, failed: bool) -> None:
        """On the pass's own lane, after its own copy: no more joining; wait for the lanes that
        joined, take in what they did; raise the first failure of one (unless ``failed``: the
        own lane's failure is on its way up already)."""
        with self._changed:
            self._open = False
            while self._active:
                self._changed.wait()
        for other in self._copies:
            copy.merge(other)
        for summary in self._absorb:
            copy.summary.absorb(summary)
        if self._error is not None and not failed:
            raise self._error


class SharedPasses:
    """The run's passes open for joining, shared by its lanes, and how many lanes are in a
    folder now: a lane with no folder left waits while another is still in one (planning a big
    folder takes a moment; its pass opens for joining after), then joins or ends."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: list[SharedPass] = []
        self._busy = 0

    def add(self, shared: SharedPass) -> None:
        with self._changed:
            self._open.append(shared)
            self._changed.notify_all()

    def remove(self, shared: SharedPass) -> None:
        with self._changed:
            with contextlib.suppress(ValueError):
                self._open.remove(shared)
            self._changed.notify_all()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """A lane is in a folder (planning it, copying it) for the time of the block."""
        with self._changed:
            self._busy += 1
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def wait_to_join(self, stopped: threading.Event) -> SharedPass | None:
        """A pass this lane has joined (it must ``help`` it), or None once no lane is in a
        folder (or the run stops)."""
        while not stopped.is_set():
            with self._changed:
                candidates, busy = list(self._open), self._busy
            for shared in candidates:
                if shared.join():
                    return shared
            with self._changed:
                if not busy and not self._busy:
                    return None
                self._changed.wait(timeout=0.5)
        return None


def copy_shared(shared: SharedPass, copy: FolderCopy, helpers: list[Callable[[], None]]) -> None:
    """The pass's own lane: start ``helpers`` (opened for this pass, each joined already), copy
    on this thread, then ``finish``."""
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
        for run in helpers
    ]
    for thread in threads:
        thread.start()
    try:
        copy.copy_parts(shared.work, shared.work.parts())
    except BaseException:
        shared.stop_handing_out()
        shared.finish(copy, failed=True)
        raise
    finally:
        for thread in threads:
            thread.join()
    shared.finish(copy, failed=False)
