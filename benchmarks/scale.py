#!/usr/bin/env python3
"""The scale benchmark (issue #17): one folder of a million small messages, see benchmarks/README.md.

    python3 benchmarks/scale.py [--messages 1000000] [--baseline 5000] [--workdir DIR]

The folder is written straight into the source Dovecot's Maildir (tests/integration/bigfolder.py)
and indexed by Dovecot (timed apart). Then each step runs as its own process (run.py's launcher:
wall time and peak RSS of that process): mailferry's first pass, two no-op passes (CONDSTORE; the
first pays Dovecot's re-read of a folder just written), the re-run after the state file is lost
(must copy 0), verify; then, through a second Dovecot serving the same Maildir without CONDSTORE,
the lost-state match and the no-op pass without CONDSTORE; then (unless ``--no-doveadm``)
``doveadm backup`` of the same folder into a fresh user. The first pass of ``--baseline`` of
the same messages (another source user) gives the rate the big folder's is compared with. Prints a
Markdown table and writes benchmarks/results/scale.json. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import run  # first: re-runs this script under the repository's venv when mailferry is missing

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
import references  # noqa: E402
from run import log, machine, run_process, summary_of  # noqa: E402
from tests.integration.bigfolder import fill_inbox, message  # noqa: E402

from mailferry.sandbox.dovecot import DovecotServer  # noqa: E402
from mailferry.sandbox.postgres import PostgresServer  # noqa: E402

# Dovecot 2.3's own list less CONDSTORE and QRESYNC (which implies it).
NO_CONDSTORE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY STATUS=SIZE SAVEDATE LITERAL+ "
    "NOTIFY SPECIAL-USE"
)
# Disk per message and copy: a Maildir file takes a whole block (4 KiB) however small, plus its
# share of Dovecot's index; measured ~4.4 KB at 20,000 and 100,000 messages. At most two copies
# are alive at once (the source and one target: each target goes before the next is made),
# counted as three for margin; plus verify's scratch file and the state.
BYTES_PER_COPY = 4600
COPIES = 3
BIG, SMALL = "big", "small"


@dataclass
class Step:
    name: str
    tool: str
    messages: int
    seconds: float
    rss_mb: float | None = None
    copied: int | None = None
    internal_seconds: float | None = None  # mailferry's own "seconds" from --json
    ok: bool = True
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


@dataclass
class Scale:
    args: argparse.Namespace
    workdir: Path
    source: DovecotServer
    target: DovecotServer
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)
    users: int = 0
    states: SqliteStates | PostgresStates | None = None

    def __post_init__(self) -> None:
        self.states = self.states or SqliteStates(self.workdir)

    def fresh_target(self, stem: str) -> str:
        self.users += 1
        user = f"{stem}{self.users}"
        self.target.add_user(user, "pw")
        return user

    def drop(self, server: DovecotServer, user: str) -> None:
        """Free the disk: a million-message copy is gigabytes."""
        shutil.rmtree(server.data_dir / "home" / user, ignore_errors=True)
        self.settle(f"drop_{user}")

    def settle(self, after: str) -> None:
        """Write out what the disk still owes (a million files written or removed) before the
        next timed step, so that no step pays for an earlier one's writeback."""
        started = time.monotonic()
        os.sync()
        self.facts[f"sync_after_{after}_seconds"] = round(time.monotonic() - started, 1)

    # -- the source ---------------------------------------------------------------------------

    def load(self) -> None:
        """Both source users written into their Maildirs, then indexed by Dovecot, timed apart."""
        for user, count in ((BIG, self.args.messages), (SMALL, self.args.baseline)):
            self.source.add_user(user, "pw")
            started = time.monotonic()
            fill_inbox(self.source, user, count)
            written = time.monotonic() - started
            started = time.monotonic()
            out = self.source.doveadm("mailbox", "status", "-u", user, "messages", "INBOX")
            indexed = time.monotonic() - started
            if int(out.split("=")[1]) != count:
                raise SystemExit(f"Dovecot counts {out.strip()} in {user}'s INBOX, not {count}")
            self.facts[f"{user}_written_seconds"] = round(written, 1)
            self.facts[f"{user}_indexed_seconds"] = round(indexed, 1)
            log(f"{user}: {count} messages written in {written:.1f} s, indexed in {indexed:.1f} s")
        self.settle("load")
        sample = range(0, self.args.messages, max(1, self.args.messages // 1000))
        self.facts["message_bytes_mean"] = round(sum(len(message(i)) for i in sample) / len(sample))

    # -- mailferry ----------------------------------------------------------------------------

    def mailferry(self, command: str, source: tuple[str, int], target: str, state: str) -> Step:
        src_user, src_port = source
        argv = [sys.executable, "-m", "mailferry.cli", command, "--json"]
        argv += [f"imap://{src_user}@127.0.0.1:{src_port}"]
        argv += [f"imap://{target}@127.0.0.1:{self.target.port}", *self.states.argv(state)]
        env = {**os.environ, "MAILFERRY_SOURCE_PASSWORD": "pw", "MAILFERRY_TARGET_PASSWORD": "pw"}
        env |= self.states.env()
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "src"), env.get("PYTHONPATH")])
        )
        proc = run_process(argv, env)
        summary = summary_of(proc.stdout)
        step = Step(command, "mailferry", 0, proc.seconds, proc.rss_mb)
        step.internal_seconds = summary.get("seconds")  # type: ignore[assignment]
        step.copied = summary.get("messages_copied")  # type: ignore[assignment]
        if proc.returncode != 0:
            step.ok = False
            step.note = f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-300:]}"
        return step

    def record(self, step: Step, name: str, messages: int, *, copies: int | None) -> Step:
        step.name, step.messages = name, messages
        if copies is not None and step.copied != copies:
            step.ok = False
            step.note = f"copied {step.copied}, expected {copies}. {step.note}".strip()
        self.steps.append(step)
        fail = f" FAILED {step.note}" if not step.ok else ""
        log(f"{name}: {step.seconds:.1f} s, {step.rate:.0f} msg/s, {step.rss_mb:.0f} MB{fail}")
        return step

    def baseline(self) -> None:
        """The first pass of ``--baseline`` of the same messages, median of ``--baseline-runs``."""
        runs = []
        for _ in range(self.args.baseline_runs):
            user = self.fresh_target("base")
            runs.append(self.mailferry("sync", (SMALL, self.source.port), user, f"state_{user}"))
            self.drop(self.target, user)
        step = sorted(runs, key=lambda s: s.seconds)[len(runs) // 2]
        step.note = f"median of {len(runs)}: " + ", ".join(f"{s.seconds:.2f} s" for s in runs)
        self.record(step, f"first pass, {self.args.baseline}", self.args.baseline, copies=None)
        step.ok = all(s.ok and s.copied == self.args.baseline for s in runs)

    def passes(self) -> str:
        """First pass, no-op, lost state, verify on the big folder; returns the target user."""
        n, source = self.args.messages, (BIG, self.source.port)
        user = self.fresh_target("mf")
        state = "state"
        self.record(self.mailferry("sync", source, user, state), "first pass", n, copies=n)
        self.facts["state_bytes_per_message"] = round(self.states.size(state) / n, 1)
        self.record(self.mailferry("sync", source, user, state), "no-op pass", n, copies=0)
        step = self.mailferry("sync", source, user, state)  # Dovecot's re-read after writes paid
        self.record(step, "no-op pass, again", n, copies=0)
        self.states.lose(state)
        self.record(self.mailferry("sync", source, user, state), "lost state", n, copies=0)
        self.facts["state_bytes_per_message_after_match"] = round(self.states.size(state) / n, 1)
        self.record(self.mailferry("verify", source, user, state), "verify", n, copies=None)
        return user

    def without_condstore(self, plain: DovecotServer, user: str) -> None:
        """The same Maildir served without CONDSTORE (another pair, so its own state): the first
        contact is a lost-state match, the second a no-op pass that must list every flag."""
        n, source = self.args.messages, (BIG, plain.port)
        state = "state_plain"
        step = self.mailferry("sync", source, user, state)
        self.record(step, "lost state, no CONDSTORE", n, copies=0)
        step = self.mailferry("sync", source, user, state)
        self.record(step, "no-op pass, no CONDSTORE", n, copies=0)

    # -- the reference ------------------------------------------------------------------------

    def doveadm(self) -> None:
        user = self.fresh_target("dsync")
        argv = references.doveadm_backup_argv(self.target, user, self.source.port, BIG, "pw")
        proc = run_process(argv)
        step = Step("doveadm backup", "doveadm", self.args.messages, proc.seconds, proc.rss_mb)
        if proc.returncode != 0:
            step.ok, step.note = False, f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        else:
            out = self.target.doveadm("mailbox", "status", "-u", user, "messages", "INBOX")
            if int(out.split("=")[1]) != self.args.messages:
                step.ok, step.note = False, f"the copy holds {out.strip()}"
        self.record(step, "doveadm backup", self.args.messages, copies=None)
        self.drop(self.target, user)


class SqliteStates:
    """Each state a SQLite file in the work directory (the default)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def path(self, name: str) -> Path:
        return self.workdir / f"{name}.sqlite3"

    def argv(self, name: str) -> list[str]:
        return ["--state", str(self.path(name))]

    def env(self) -> dict[str, str]:
        return {}

    def lose(self, name: str) -> None:
        for path in self.workdir.glob(f"{name}.sqlite3*"):
            path.unlink()

    def size(self, name: str) -> int:
        """The state database's files (the database, and a WAL if one is left)."""
        return sum(p.stat().st_size for p in self.workdir.glob(f"{name}.sqlite3*"))


class PostgresStates:
    """Each state a database of one PostgreSQL cluster (``--postgres``), the key ring's file
    beside the SQLite one's; losing a state drops its database."""

    def __init__(self, server: PostgresServer, workdir: Path) -> None:
        self.server, self.workdir = server, workdir
        self.made: set[str] = set()

    def argv(self, name: str) -> list[str]:
        url = self.server.url(name).replace(f":{self.server.password}@", "@")
        if name not in self.made:  # made as an administrator would: `mailferry db upgrade`
            self.server.create_database(name)
            argv = [sys.executable, "-m", "mailferry.cli", "db", "upgrade", "--database", url]
            env = {**os.environ, **self.env(), "PYTHONPATH": str(REPO / "src")}
            subprocess.run(argv, env=env, check=True, capture_output=True)
            self.made.add(name)
        return ["--state", str(self.workdir / f"{name}.sqlite3"), "--database", url]

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.server.password}

    def lose(self, name: str) -> None:
        self.server.drop_database(name)
        self.made.discard(name)

    def size(self, name: str) -> int:
        with self.server.admin() as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
            empty = conn.execute("SELECT pg_database_size('template1')").fetchone()
        if row is None or empty is None:
            raise SystemExit(f"PostgreSQL gives no size for database {name!r}")
        return int(row[0]) - int(empty[0])  # less what an empty database takes


def serve_without_condstore(stack: contextlib.ExitStack, scale: Scale) -> DovecotServer:
    """A second Dovecot over the source's Maildir (its user's home a link to the source's): the
    same messages and UIDs, no CONDSTORE."""
    plain = stack.enter_context(
        DovecotServer(
            scale.workdir / "plain", delimiter="/", auto_create=False, capability=NO_CONDSTORE
        )
    )
    plain.add_user(BIG, "pw")
    home = plain.data_dir / "home" / BIG
    shutil.rmtree(home, ignore_errors=True)
    home.symlink_to(scale.source.data_dir / "home" / BIG)
    return plain


def check_disk(workdir: Path, messages: int) -> None:
    """Refuse to start what would fill the disk half-way (1,000,000 messages: ~14 GB)."""
    need = COPIES * messages * BYTES_PER_COPY + messages * 700  # + verify's scratch, the state
    stat = os.statvfs(workdir)
    free, inodes = stat.f_bavail * stat.f_frsize, stat.f_favail
    log(f"disk: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free under {workdir}")
    if need > free or COPIES * messages > inodes:
        raise SystemExit(
            f"not enough room under {workdir}: {need / 1e9:.1f} GB and {COPIES * messages} inodes "
            f"needed, {free / 1e9:.1f} GB and {inodes} free (--workdir elsewhere?)"
        )


def table(steps: list[Step], baseline: Step | None) -> str:
    lines = [
        "| step | seconds | msg/s | peak RSS MB | copied | notes |",
        "|---|---|---|---|---|---|",
    ]
    for s in steps:
        notes = [s.note] if s.note else []
        if s.internal_seconds is not None:
            notes.insert(0, f"mailferry's own {s.internal_seconds} s")
        if s.name == "first pass" and baseline is not None and baseline.rate:
            notes.append(f"{s.rate / baseline.rate:.2f}x the {baseline.messages}-message rate")
        if s.name == "first pass" and steps[-1].tool == "doveadm" and steps[-1].rate:
            notes.append(f"{s.rate / steps[-1].rate:.2f}x doveadm backup")
        copied = "" if s.copied is None else s.copied
        mark = "" if s.ok else "FAILED "
        rss = f"{s.rss_mb:.1f}" if s.rss_mb is not None else ""
        lines.append(
            f"| {mark}{s.name} | {s.seconds:.1f} | {s.rate:.0f} | {rss} | {copied} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000, help="the big folder's size")
    parser.add_argument(
        "--baseline", type=int, default=5000, help="messages of the rate compared with"
    )
    parser.add_argument("--baseline-runs", type=int, default=3, help="median of this many")
    parser.add_argument(
        "--timeout", type=float, default=6 * 3600, help="seconds any one step may take"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "scale.json")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="the state in PostgreSQL (a cluster of its own, fsync on) instead of SQLite files",
    )
    parser.add_argument(
        "--no-doveadm",
        action="store_true",
        help="leave out doveadm backup (the reference of rule 3; 16-26 minutes at a million)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where the servers live (default: a temporary directory)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    run.PROCESS_TIMEOUT = args.timeout  # a million messages on a loaded machine take over an hour
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: servers stop, files go
    started = time.time()
    load = os.getloadavg()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="mailferry-scale-"))
        )
        workdir.mkdir(parents=True, exist_ok=True)
        check_disk(workdir, args.messages)
        source = stack.enter_context(
            DovecotServer(workdir / "source", delimiter="/", auto_create=False)
        )
        target = stack.enter_context(DovecotServer(workdir / "target", delimiter="."))
        states: SqliteStates | PostgresStates = SqliteStates(workdir)
        if args.postgres:  # as durable as the SQLite state: fsync and synchronous commits on
            durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            cluster = stack.enter_context(PostgresServer(workdir / "postgres", durable))
            states = PostgresStates(cluster, workdir)
        scale = Scale(args, workdir, source, target, states=states)
        scale.load()
        scale.baseline()
        user = scale.passes()
        scale.without_condstore(serve_without_condstore(stack, scale), user)
        copy = du(target.data_dir / "home" / user)
        scale.facts["target_copy_bytes_per_message"] = round(copy / args.messages)
        scale.drop(target, user)
        if not args.no_doveadm:
            scale.doveadm()
    baseline, rest = scale.steps[0], scale.steps[1:]
    print(table(rest, baseline))
    print(f"\nbaseline: {table([baseline], None).splitlines()[-1]}")
    for key, value in scale.facts.items():
        print(f"- {key}: {value}")
    report = {
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "facts": scale.facts,
        "baseline": asdict(baseline) | {"msg_per_s": round(baseline.rate, 1)},
        "steps": [asdict(s) | {"msg_per_s": round(s.rate, 1)} for s in rest],
        "first_pass_vs_baseline": round(rest[0].rate / baseline.rate, 3) if baseline.rate else None,
        "first_pass_vs_doveadm": vs_doveadm(rest),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    return 0 if all(s.ok for s in scale.steps) else 1


def vs_doveadm(steps: list[Step]) -> float | None:
    """The first pass's rate over ``doveadm backup``'s, where it ran."""
    if steps[-1].tool != "doveadm" or not steps[-1].rate:
        return None
    return round(steps[0].rate / steps[-1].rate, 3)


def du(top: Path) -> int:
    """Bytes on disk under ``top`` (whole blocks, as the disk fills)."""
    return sum(p.lstat().st_blocks * 512 for p in top.rglob("*"))


if __name__ == "__main__":
    sys.exit(main())
