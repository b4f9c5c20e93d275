"""The two references mailferry is measured against.

* ``doveadm_backup``: Dovecot's own dsync, in C, reading the source over IMAP (``imapc``) and
  writing the target user's Maildir directly (run against the target instance's config, as
  root, like the rest of the sandbox).
* ``naive_copy``: what a first script does with imapclient: per message one FETCH, then one
  APPEND (imaplib sends a synchronising literal: two round trips), nothing pipelined.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass

import imapclient
from imapclient.exceptions import IMAPClientError

from mailferry.sandbox.dovecot import DovecotServer

DOVEADM_FEATURES = "rfc822.size fetch-headers"


def doveadm_backup_argv(
    target: DovecotServer, user: str, source_port: int, source_user: str, source_password: str
) -> list[str]:
    """``doveadm backup -R`` into ``user``'s Maildir on ``target``, reading the source via imapc.

    ``backup -R`` makes the imapc side the master (one-way: the target is made identical to the
    source); ``mail_prefetch_count`` lets dsync keep several FETCHes in flight.
    """
    options = {
        "imapc_host": "127.0.0.1",
        "imapc_port": str(source_port),
        "imapc_user": source_user,
        "imapc_password": source_password,
        "imapc_features": DOVEADM_FEATURES,
        "mail_prefetch_count": "20",
    }
    argv = ["doveadm", "-c", str(target.conf_path)]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, "backup", "-R", "-u", user, "imapc:"]


@dataclass
class NaiveResult:
    messages: int
    bytes: int
    seconds: float  # in all
    setup_seconds: float  # log in, list folders, search them: paid once, not per message
    total_messages: int  # in the source mailbox (to extrapolate a sampled copy)

    def extrapolated(self) -> float:
        """The time for the whole mailbox: setup, plus the per-message time for every message."""
        per_message = (self.seconds - self.setup_seconds) / self.messages
        return self.setup_seconds + per_message * self.total_messages


def _client(host: str, port: int, user: str, password: str) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient(host, port, ssl=False, timeout=120)
    client.normalise_times = False
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.login(user, password)
    return client


def _inventory(source: imapclient.IMAPClient) -> list[tuple[str, int]]:
    pairs = []
    for flags, _, name in source.list_folders():
        if b"\\Noselect" in flags:
            continue
        source.select_folder(name, readonly=True)
        pairs += [(name, uid) for uid in source.search("ALL")]
    return pairs


def naive_copy(
    source_at: tuple[int, str, str], target_at: tuple[int, str, str], *, limit: int | None = None
) -> NaiveResult:
    """Copy every message (or every k-th, ``limit`` in all) one at a time; timed end to end.

    ``source_at`` and ``target_at`` are (port on 127.0.0.1, user, password).
    """
    start = time.monotonic()
    source = _client("127.0.0.1", *source_at)
    target = _client("127.0.0.1", *target_at)
    pairs = _inventory(source)
    chosen = pairs if limit is None else pairs[:: max(1, len(pairs) // limit)][:limit]
    setup = time.monotonic() - start
    copied = size = 0
    current = None
    for folder, uid in chosen:
        if folder != current:
            source.select_folder(folder, readonly=True)
            with contextlib.suppress(IMAPClientError):  # exists already (INBOX, special-use)
                target.create_folder(folder)
            current = folder
        data = source.fetch([uid], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])[uid]
        flags = [f for f in data[b"FLAGS"] if f.lower() != b"\\recent"]
        target.append(folder, data[b"BODY[]"], flags, data[b"INTERNALDATE"])
        copied += 1
        size += len(data[b"BODY[]"])
    source.logout()
    target.logout()
    return NaiveResult(copied, size, time.monotonic() - start, setup, len(pairs))
