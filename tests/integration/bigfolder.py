"""Big folders written straight into a sandbox Dovecot's Maildir (thousands of messages a second,
where APPENDs would take minutes), and counted back over IMAP."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailferry.sandbox.dovecot import MAIL_GROUP, MAIL_USER, DovecotServer

FIRST_TIME = 1_500_000_000  # INTERNALDATE of message 0 (Dovecot reads it from the file's mtime)


def message(i: int, without_id: int = 7) -> bytes:
    """Message ``i``: small, with a Message-ID, except every ``without_id``-th (matched by content
    then)."""
    head = f"Message-ID: <big{i}@big.test>\r\n" if i % without_id else ""
    return f"{head}Subject: big {i}\r\nFrom: a@big.test\r\n\r\nbody {i}\r\n".encode()


def fill_inbox(server: DovecotServer, user: str, count: int, without_id: int = 7) -> None:
    """Messages 0..count-1 into ``user``'s INBOX, every other one \\Seen, before Dovecot indexes it
    (call it before the user's first login, or Dovecot may not look at the new files at once).

    Each file is named as Dovecot names a message it stores, with its size (``S=``) and its size
    with CRLF line ends (``W=``, what RFC822.SIZE and a FETCH's literal say). Without ``W=``, the
    first client to read a message's size makes Dovecot add it to the folder's dovecot-uidlist,
    which it then writes out whole about every 10,000 messages: at a million, whichever
    tool read the folder first paid that, and the next one did not."""
    maildir = server.data_dir / "home" / user / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    cur = maildir / "cur"
    for i in range(count):
        body = message(i, without_id)
        flags = "S" if i % 2 else ""
        path = cur / f"{FIRST_TIME + i}.M{i}P1.bigfolder,S={len(body)},W={len(body)}:2,{flags}"
        path.write_bytes(body)
        os.utime(path, (FIRST_TIME + i, FIRST_TIME + i))
    _chown_tree(server.data_dir / "home" / user)


def _chown_tree(top: Path) -> None:
    uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
    for directory, dirs, files in os.walk(top):
        os.chown(directory, uid, gid)
        for name in dirs + files:
            os.chown(Path(directory) / name, uid, gid)


def count(server: DovecotServer, user: str, folder: str = "INBOX") -> int:
    """Messages in ``folder``, as Dovecot counts them (doveadm, no IMAP session needed)."""
    out = server.doveadm("mailbox", "status", "-u", user, "messages", folder)
    return int(out.split("=")[1])


# Runs the command as its own child and reports that child's peak RSS. Linux carries a process's
# pre-exec RSS into ru_maxrss (and vfork shares the parent's memory map), so a child spawned
# straight from pytest would report pytest's peak; spawned from this small launcher, its figure
# is its own (as benchmarks/run.py measures).
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


def run_measured(argv: list[str], env: dict[str, str], timeout: float) -> Measured:
    """Run ``argv`` to completion as a separate process: its exit code, output and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss_kb"
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(report), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        rss_kb = int(report.read_text()) if report.exists() else 0
    return Measured(proc.returncode, proc.stdout, proc.stderr, rss_kb / 1024)
