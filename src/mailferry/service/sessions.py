"""Opening and closing the extra sessions of a run's lanes.

A run of ``--connections 3`` opens two more sessions to each side before its lanes start. Opened
one after another, over a WAN, that was four logins' worth of round trips in a row (each a
greeting, a login, capabilities, namespaces: 2.4 s at 100 ms round trips) before the lanes began;
opened at once, it costs one login's.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable

from mailferry.domain.errors import AuthError, ConnectError, MailferryError
from mailferry.domain.ports import MailAccount
from mailferry.service.resilience import Reconnect

Pair = tuple[MailAccount, MailAccount]


def open_pairs(reconnect: Reconnect, count: int) -> tuple[list[Pair], ConnectError | None]:
    """Up to ``count`` (source, target) pairs of fresh sessions, every login at once, and the
    first failure that left a pair unopened (the run goes on with fewer lanes). A refused login
    (``AuthError``) is raised, once every session has been opened or refused: the sessions that
    did open are closed first."""
    opened: list[list[MailAccount | BaseException]] = [[], []]
    threads = [
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(_open_into, side_open, opened[side]),
            daemon=True,
        )
        for _ in range(count)
        for side, side_open in enumerate((reconnect.source, reconnect.target))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sources = [s for s in opened[0] if not isinstance(s, BaseException)]
    targets = [t for t in opened[1] if not isinstance(t, BaseException)]
    errors = [e for e in opened[0] + opened[1] if isinstance(e, BaseException)]
    pairs = list(zip(sources, targets, strict=False))
    close_sessions(*sources[len(pairs) :], *targets[len(pairs) :])
    refused = [e for e in errors if isinstance(e, AuthError)]
    other = [e for e in errors if not isinstance(e, ConnectError)]
    if refused or other:
        close_sessions(*(account for pair in pairs for account in pair))
        raise (refused or other)[0]
    failed = [e for e in errors if isinstance(e, ConnectError)]
    return pairs, failed[0] if failed else None


def _open_into(
    open_session: Callable[[], MailAccount], into: list[MailAccount | BaseException]
) -> None:
    try:
        into.append(open_session())
    except BaseException as exc:  # noqa: BLE001 - sorted out by open_pairs in the caller's thread
        into.append(exc)


def close_sessions(*accounts: MailAccount) -> None:
    """Close each; one that fails to close (a session already dropped) is passed over."""
    for account in accounts:
        with contextlib.suppress(MailferryError, OSError):
            account.close()


class EarlyPairs:
    """Lane sessions opened on a thread of their own while the run's start lists, creates and
    reads the status of folders (over a WAN, both are several round trips): taken by the lanes,
    or closed when the run finds no use for them (``discard``, always called)."""

    def __init__(self, reconnect: Reconnect, count: int) -> None:
        self._pairs: list[Pair] = []
        self._failed: ConnectError | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._open, reconnect, count), daemon=True
        )
        self._thread.start()

    def _open(self, reconnect: Reconnect, count: int) -> None:
        try:
            self._pairs, self._failed = open_pairs(reconnect, count)
        except BaseException as exc:  # noqa: BLE001 - raised by take() in the run's thread
            self._error = exc

    def take(self) -> tuple[list[Pair], ConnectError | None]:
        """The pairs opened (once) and the failure that left one unopened; a refused login is
        raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        pairs, self._pairs = self._pairs, []
        return pairs, self._failed

    def discard(self) -> None:
        """Close what nobody took."""
        self._thread.join()
        pairs, self._pairs = self._pairs, []
        close_sessions(*(account for pair in pairs for account in pair))
