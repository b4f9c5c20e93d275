"""Running mailferry against the fixture servers, in-process (click's runner) or as a real process."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailferry.adapters.imap import Credentials
from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.cli.app import main
from mailferry.domain.model import Endpoint, Security
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.sandbox.dovecot import DovecotServer


@dataclass
class Account:
    server: DovecotServer
    user: str
    password: str
    via_port: int | None = None  # mailferry connects here (a proxy) instead of the server

    @property
    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.via_port or self.server.port}"

    def client(self):
        return connect(self.server, self.user, self.password)


@dataclass
class Migration:
    source: Account
    target: Account
    state: Path

    def env(self) -> dict[str, str]:
        return {
            "MAILFERRY_SOURCE_PASSWORD": self.source.password,
            "MAILFERRY_TARGET_PASSWORD": self.target.password,
        }

    def cli(self, command: str, *args: str):
        """Run ``mailferry COMMAND SOURCE TARGET ARGS`` in-process; returns click's Result."""
        extra = ["--state", str(self.state)]
        argv = [command, self.source.url, self.target.url, *extra, *args]
        return CliRunner().invoke(main, argv, env=self.env(), catch_exceptions=False)

    def sync_json(self, *args: str) -> tuple[int, dict]:
        result = self.cli("sync", "--json", *args)
        try:
            return result.exit_code, json.loads(result.stdout)
        except ValueError:
            raise AssertionError(
                f"exit {result.exit_code}, no JSON: {result.output[-3000:]}"
            ) from None

    def process(self, *args: str) -> subprocess.Popen[bytes]:
        """``mailferry sync`` as a separate process (for kill -9 tests)."""
        argv = [sys.executable, "-m", "mailferry.cli", "sync", self.source.url, self.target.url]
        argv += ["--state", str(self.state), "--json", *args]
        return subprocess.Popen(
            argv,
            env={**os.environ, **self.env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def load(account: Account, *, seed: int = 1, scale: int = 1, big_message_mb: int = 0):
    corpus = build_corpus(seed, scale=scale, big_message_mb=big_message_mb)
    client = account.client()
    try:
        report = load_corpus(
            client, corpus, account.server.delimiter, getattr(account.server, "prefix", "")
        )
    finally:
        client.logout()
    return corpus, report


def bulk_load(account: Account, folders: list[str], per_folder: int) -> None:
    """Many small messages (1 in 5 without Message-ID) plus a byte-identical pair per folder."""
    client = connect(account.server, account.user, account.password)
    try:
        for name in folders[1:]:
            client.create_folder(name)
        rng = random.Random(7)
        for f, name in enumerate(folders):
            for i in range(per_folder):
                has_id = i % 5 != 0
                head = f"Message-ID: <k{f}.{i}@kill.test>\r\n" if has_id else ""
                text = "x" * rng.randint(200, 20_000)
                body = f"{head}Subject: kill {f}.{i}\r\nFrom: a@b\r\n\r\n{text}\r\n".encode()
                client.append(name, body, [b"\\Seen"] if i % 2 else [], None)
            # byte-identical twins must stay twins
            client.append(name, b"Subject: twin\r\n\r\ntwin\r\n", [], None)
            client.append(name, b"Subject: twin\r\n\r\ntwin\r\n", [], None)
    finally:
        client.logout()


def kill_during_copy(
    m: Migration,
    attempts: int,
    seed: int,
    folders: list[str],
    check: Callable[[Migration], object],
    *args: str,
    total: int,
    later: tuple[float, float] = (0.0, 0.01),
) -> list[int]:
    """Start ``mailferry sync ARGS`` ``attempts`` times; each run is killed with SIGKILL once
    its copy has moved a random share of what is left of the ``total`` messages (its state holds
    that many intents or copies more than before it started), then a random moment in ``later``
    (seconds), unless it ended first; ``check(m)`` after each. Returns the messages in the
    target's ``folders`` at each kill, in order.

    Tied to the copy's progress, not to the clock: the CLI takes ~1.3 s to start and a run plans
    before it copies, so kills at fixed times had landed before any message moved; and a delay
    counted from the copy's start outlasted the whole copy on a quiet machine (CI, 2026-12-07).
    Each run's share is at most what is left over the attempts left plus one, so every kill
    lands mid-copy. The state records intents a chunk at a time (a folder, a window), ahead of
    its APPENDs: a kill right after the goal often finds intents whose messages have not all
    landed, the window the state's intents exist for."""
    rng = random.Random(seed)
    counts: list[int] = []
    watcher = m.target.client()
    try:
        for attempt in range(attempts):
            before = state_progress(m.state)
            share = max(1, (total - before) // (attempts - attempt + 1))
            goal = before + rng.randint(1, share)
            proc = m.process(*args)
            while proc.poll() is None and state_progress(m.state) < goal:
                time.sleep(0.005)
            time.sleep(rng.uniform(*later))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=120)
                counts.append(target_count(watcher, folders))
            else:
                proc.communicate(timeout=120)
            check(m)
    finally:
        watcher.logout()
    return counts


def state_progress(state: Path) -> int:
    """Messages the state holds an intent or a copy of (0 before it has its tables)."""
    if not state.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
            query = "SELECT (SELECT count(*) FROM copied) + (SELECT count(*) FROM intents)"
            return int(db.execute(query).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or busy: no progress seen this time
        return 0


def target_count(client: IMAPClient, folders: list[str]) -> int:
    """Messages in ``folders`` (missing ones count 0), by STATUS on a session of its own."""
    total = 0
    for folder in folders:
        try:
            total += int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        except IMAPClientError:
            continue  # not created yet
    return total


def open_sessions(server, user: str, password: str) -> tuple[NamespacedAccount, NamespacedAccount]:
    """(writable, read-only) sessions of one user, as mailferry opens a target and a source."""
    endpoint = Endpoint("127.0.0.1", server.port, Security.NONE, user)
    writer = NamespacedAccount.connect(endpoint, Credentials(password))
    return writer, NamespacedAccount.connect(endpoint, Credentials(password), readonly=True)
