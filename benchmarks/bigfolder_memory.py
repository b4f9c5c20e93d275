#!/usr/bin/env python3
"""Where the memory of a big folder goes (issue #17 rule 1): peak RSS of each pass over one
folder of N small messages, and the largest live allocations at the peak (tracemalloc).

    python3 benchmarks/bigfolder_memory.py [--messages 100000] [--trace]

The folder is written straight into the source Dovecot's Maildir (tests/integration/bigfolder.py).
Each pass runs as its own process (run.py's launcher: wall time, peak RSS of that process):
first pass, no-op pass, a pass after every message was flagged on the source (doveadm), the
re-run after the state database is lost, verify. With ``--trace``,
the first pass and the lost-state re-run run again in this process under tracemalloc, into a
fresh target, and the allocations alive at the traced peak are printed by source line. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Self

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
import run  # noqa: E402, F401 - re-runs this script under the repository's venv if needed

sys.path.insert(0, str(REPO))
from click.testing import CliRunner  # noqa: E402
from run import run_process, summary_of  # noqa: E402
from tests.integration.bigfolder import count, fill_inbox  # noqa: E402

from mailferry.cli.app import main as cli  # noqa: E402
from mailferry.sandbox.dovecot import DovecotServer  # noqa: E402
from mailferry.sandbox.postgres import PostgresServer  # noqa: E402


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class PeakSnapshot:
    """Samples tracemalloc every ``every`` seconds; keeps a snapshot whenever the traced size
    passed the last snapshot's by 10 %: the last one kept is (about) the peak's."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.best, self.size = every, None, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        tracemalloc.start(8)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            current = tracemalloc.get_traced_memory()[0]
            if current > self.size * 1.1:
                self.best, self.size = tracemalloc.take_snapshot(), current


def traced(argv: list[str], env: dict[str, str], label: str) -> None:
    with PeakSnapshot() as peak:
        result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
    print(f"\n## {label}: exit {result.exit_code}, traced peak {peak.peak / 1e6:.1f} MB")
    if peak.best is None:
        return
    stats = peak.best.statistics("lineno")
    print(f"snapshot at {peak.size / 1e6:.1f} MB; largest by line:")
    for stat in stats[:15]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(f"  {stat.size / 1e6:8.1f} MB {stat.count:9d} blocks  {where}")


class StateDb:
    """Where the passes keep their state: a SQLite file, or (``--postgres``) a database of a
    throw-away PostgreSQL cluster (mailferry.sandbox.postgres), as issue 17 rule 5 asks."""

    def __init__(self, work: Path, postgres: PostgresServer | None, env: dict[str, str]) -> None:
        self.work, self.postgres, self.env = work, postgres, env
        self.url = ""
        self.lose()

    def args(self) -> list[str]:
        if self.postgres is None:
            return ["--state", str(self.work / "state.sqlite3")]
        return ["--database", self.url]

    def lose(self) -> None:
        """A fresh, empty state (the lost-state pass)."""
        if self.postgres is None:
            for path in self.work.glob("state.sqlite3*"):
                path.unlink()
            return
        self.postgres.drop_database("bigfolder")
        self.url = self.postgres.create_database("bigfolder")
        upgrade = [sys.executable, "-m", "mailferry.cli", "db", "upgrade", "--database", self.url]
        subprocess.run(upgrade, env=self.env, check=True, capture_output=True)

    def size(self) -> int:
        if self.postgres is None:
            return sum(p.stat().st_size for p in self.work.glob("state.sqlite3*"))
        with self.postgres.admin("bigfolder") as conn:
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
            ).fetchone()
        return int(row[0]) if row and row[0] else 0


def prepare(label: str, source: DovecotServer, state: StateDb) -> None:
    """Before a pass: the state lost, or every message changed (CHANGEDSINCE would list all)."""
    if label == "lost state":
        state.lose()
    if label == "all flagged":
        source.doveadm("flags", "add", "-u", "src", "\\Flagged", "mailbox", "INBOX", "all")


def thin_out(source: DovecotServer, every: int) -> None:
    """Dovecot numbers every message, then finds all but every ``every``-th gone: sparse UIDs."""
    count(source, "src")
    cur = source.data_dir / "home" / "src" / "Maildir" / "cur"
    for path in cur.iterdir():
        if int(path.name.split(".M")[1].split("P")[0]) % every:
            path.unlink()
    log(f"left {count(source, 'src')} messages, one UID in {every}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument(
        "--sparse",
        type=int,
        default=1,
        help="write N x this many messages, index them, then expunge all but every this-th",
    )
    parser.add_argument("--postgres", action="store_true", help="the state on PostgreSQL")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailferry-bigfolder-"))
    with (
        DovecotServer(work / "src", delimiter="/", auto_create=False) as source,
        DovecotServer(work / "dst", delimiter=".") as target,
        PostgresServer(work / "pg") if args.postgres else contextlib.nullcontext() as postgres,
    ):
        source.add_user("src", "pw")
        for user in ("dst", "dst2"):
            target.add_user(user, "pw")
        started = time.monotonic()
        fill_inbox(source, "src", args.messages * args.sparse)
        if args.sparse > 1:
            thin_out(source, args.sparse)
        log(f"{args.messages} messages written in {time.monotonic() - started:.1f} s")
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
        env |= {"MAILFERRY_SOURCE_PASSWORD": "pw", "MAILFERRY_TARGET_PASSWORD": "pw"}
        src = f"imap://src@127.0.0.1:{source.port}"
        state = StateDb(work, postgres, env)

        def sync(dst: str) -> list[str]:
            return [src, f"imap://{dst}@127.0.0.1:{target.port}", *state.args()]

        print("| pass | seconds | msg/s | peak RSS MB | copied |\n|---|---|---|---|---|")
        for label in ("first pass", "no-op pass", "all flagged", "lost state", "verify"):
            prepare(label, source, state)
            command = ["verify"] if label == "verify" else ["sync", "--json"]
            proc = run_process([sys.executable, "-m", "mailferry.cli", *command, *sync("dst")], env)
            copied = summary_of(proc.stdout).get("messages_copied", f"exit {proc.returncode}")
            rate = args.messages / proc.seconds
            print(f"| {label} | {proc.seconds:.1f} | {rate:.0f} | {proc.rss_mb:.1f} | {copied} |")
            if label == "first pass":  # rule 1: the state grows by a bounded number of bytes
                size = state.size()
                log(f"state after the first pass: {size / args.messages:.0f} bytes per message")
        if args.trace:
            (work / "traced").mkdir()
            state = StateDb(work / "traced", None, env)
            traced(["sync", "--json", *sync("dst2")], env, "first pass (traced, fresh target)")
            state.lose()
            traced(["sync", "--json", *sync("dst2")], env, "lost state (traced)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
