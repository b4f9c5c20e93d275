"""The one exception tree of mailferry.

    MailferryError                 root; carries a one-line message for people
    ├── ConfigError                bad usage or configuration (exit 2); ``problems`` lists every one found
    │   ├── NotFound               the named endpoint, batch, mailbox or token does not exist (HTTP 404)
    │   └── Conflict               what is stored forbids it: exists already, in use, running (HTTP 409)
    ├── AccountError               an account cannot be used at all (exit 3)
    │   ├── ConnectError           host unknown, port refused, TLS failure, connection dropped
    │   │   ├── ThrottledError     the server said "slow down" (carries the wait it suggested, and
    │   │   │                      whether it is a daily cap: then the run pauses instead of retrying)
    │   │   └── ServerFaultError   a DAV server answered 500: a fault of its own (a full disk, a bug);
    │   │                          a read is retried, a PUT so answered may or may not be stored
    │   └── AuthError              login refused
    ├── TargetFullError            the target mailbox is over quota, its disk or a DAV server's
    │   │                          storage full (HTTP 507): the run stops cleanly (exit 1)
    │   └── TargetFailingError     the target refuses write after write by a fault of its own
    │                              ([SERVERBUG], HTTP 500): the run stops as for a full one
    ├── StopRequestedError         SIGINT/SIGTERM: stopped after the burst in flight
    ├── FolderError                one folder (or DAV collection) cannot be read or created; the rest
    │   │                          of the run goes on
    │   └── SyncTokenInvalidError  a DAV sync token the server no longer accepts: list the collection whole
    ├── MessageError               one message cannot be copied; recorded with its reason, the run goes on
    ├── ItemError                  one calendar/contact item (DAV resource) cannot be read or written;
    │   │                          recorded with its reason, the run goes on
    │   └── ItemConflictError      a write's precondition failed (412: exists / changed) or the server
    │                              found a conflict (409, e.g. the UID is used by another resource)
    ├── UnconvertibleError         an Outlook item (or a part of it: its recurrence, its time zone)
    │                              cannot be converted to iCalendar/vCard (domain/pst*.py); the PST
    │                              source reports the item as an ItemError, or converts the rest
    └── StateError                 the state database is unusable (not ours, newer version, corrupt)
        ├── StateUnreachableError  its server cannot be reached or refuses the login (exit 3)
        └── SchemaTooOldError      a shared database (PostgreSQL) needs `mailferry db upgrade`

Library exceptions (socket, ssl, imaplib, httpx, sqlite) are translated into these at the adapter boundary.
``NotFound`` and ``Conflict`` are usage errors to the CLI (exit 2, like every ``ConfigError``); the
web maps every type to its HTTP status in one handler (``web.app``), never by a message's words.

Outside the tree, a defect of mailferry itself, never of a server or a user:

    AssertionError
    └── ConcurrentUseError         one session (an IMAP connection) used by two threads at once

It is not a ``MailferryError`` so that nothing that catches those (a retry, a folder's failure
recorded and passed over, ``close_sessions``) catches it: it goes up to the executor's one
``except Exception`` or to a traceback, as an ``assert`` would.
"""

from __future__ import annotations


class MailferryError(Exception):
    """Root of every error mailferry raises on purpose."""


class ConfigError(MailferryError):
    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class NotFound(ConfigError):  # noqa: N818 - the HTTP meaning, as the tree above names it
    """A name that refers to nothing: raised where the lookup fails (stores, services)."""


class Conflict(ConfigError):  # noqa: N818 - the HTTP meaning, as the tree above names it
    """The request is well formed but what is stored forbids it (a duplicate, a use, a run)."""


class AccountError(MailferryError):
    """The account cannot be used: connection or login."""


class ConnectError(AccountError):
    pass


class ThrottledError(ConnectError):
    def __init__(self, message: str, wait: float = 0.0, *, cap: bool = False) -> None:
        self.wait = wait
        self.cap = cap  # a daily bandwidth/command cap (Gmail): lifts in hours, not seconds
        super().__init__(message)


class ServerFaultError(ConnectError):
    """HTTP 500 from a DAV server. Retried like a dropped connection, except for a PUT: the item
    is reported and its intent settled by the next run (Xandikos stores the vCard it answers 500
    to); 20 in a row with nothing stored between stop the run (``TargetFailingError``)."""


class AuthError(AccountError):
    pass


class TargetFullError(MailferryError):
    pass


class TargetFailingError(TargetFullError):
    """The target refuses message after message by its own fault ([SERVERBUG]: Dovecot's answer
    when its disk is full): the run stops as for a full target."""


class StopRequestedError(MailferryError):
    pass


class FolderError(MailferryError):
    def __init__(self, folder: str, reason: str) -> None:
        self.folder = folder
        self.reason = reason
        super().__init__(f"folder {folder!r}: {reason}")


class MessageError(MailferryError):
    def __init__(self, folder: str, uid: int, reason: str) -> None:
        self.folder = folder
        self.uid = uid
        self.reason = reason
        super().__init__(f"folder {folder!r} uid {uid}: {reason}")


class SyncTokenInvalidError(FolderError):
    pass


class ItemError(MailferryError):
    def __init__(self, collection: str, href: str, reason: str) -> None:
        self.collection = collection
        self.href = href
        self.reason = reason
        super().__init__(f"collection {collection!r} item {href!r}: {reason}")


class ItemConflictError(ItemError):
    def __init__(self, collection: str, href: str, status: int) -> None:
        self.status = status
        super().__init__(collection, href, f"HTTP {status}: precondition failed or conflict")


class UnconvertibleError(MailferryError):
    """A conversion from MAPI properties that cannot be done: ``str()`` says why."""


class StateError(MailferryError):
    pass


class StateUnreachableError(StateError):
    """The state database's server cannot be reached, or it refuses the login."""


class SchemaTooOldError(StateError):
    """A shared database's schema is missing or older than this mailferry: upgraded only by
    `mailferry db upgrade`, never by whichever worker opens it first."""


class ConcurrentUseError(AssertionError):
    """A second thread entered a session's command while ``holder`` was inside one: two threads'
    commands on one IMAP connection read each other's answers, and the one whose answer was taken
    waits for it until its timeout. Raised at once, before the second thread writes anything, by
    the real session (``adapters.occupancy``) and the memory fake alike; never retried."""

    def __init__(self, holder: str, entrant: str, command: str = "a command") -> None:
        self.holder = holder  # the thread inside the session's I/O
        self.entrant = entrant  # the thread refused
        self.command = command
        super().__init__(
            f"{command}: a session used by two threads at once "
            f"({entrant} entered while {holder} was inside)"
        )
