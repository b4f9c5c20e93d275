"""Archives: PSTs and a large generated mbox into Maildir and into Dovecot, `readpst` on the same
PSTs, and the IMAP reference on the same messages (issue #18 rule 5).

    python3 benchmarks/archives.py                        # a 1 GiB mbox, the shared outlook.pst
    python3 benchmarks/archives.py --mbox-mb 4096 --no-pst
    python3 benchmarks/archives.py --mbox-mb 256 --baseline /path/to/other/checkout/src
    python3 benchmarks/archives.py --pst enron.pst --pst-copies 80 --mbox-mb 1300 --workdir /dev/shm/a

The mbox cases run in this order, so that at most three copies of the corpus are on disk at once
(the generated file, and two more; each copy is removed once the next case has used it):

1. mbox -> Maildir;
2. Maildir (what case 1 wrote) -> a fresh Dovecot user;
3. mbox -> a fresh Dovecot user A;
4. the **IMAP reference**: A -> a fresh Dovecot user B with `mailferry sync`, Dovecot to Dovecot on
   loopback: the same messages, the same target server, in the same run.

The "vs IMAP" column is the reference's wall time over the case's (rule 5 asks >= 0.8 for mbox and
Maildir into Dovecot); for a PST (another size than the mbox) it is its own MB/s over the
reference's own MB/s, each against the reference run by the same tree (``--baseline``). Each
conversion is one `mailferry sync` process (wall time from process start, so interpreter
start-up is included; peak RSS of that process alone, as `run.py` measures it, and the peak
of the summed RSS of it and the worker processes it starts, sampled every 50 ms). MB/s is the
source file's size over the wall time, and over the own time (the mbox file's for every mbox
case: the same messages). ``--baseline SRC`` runs every mailferry case a second time, first, with
``PYTHONPATH=SRC`` (another checkout's ``src``) into a target thrown away after: before and after
in one run, under the same load. Prints a Markdown table, writes `results/archives.json`.

``--pst-copies N`` grows each PST first (`pstgrow.py`: every message N times, sharing the
original's blocks, so the file stays small while a reader reads N times the messages); its MB/s
counts N times the source file's size. Because a PST's MIME messages are not the size of the PST,
every case also has "message MB/s": the bytes it wrote (`bytes_copied`) over its own seconds, and
a PST's "vs IMAP" is also given on those, against the reference's.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pstgrow  # benchmarks/pstgrow.py
import run as harness  # benchmarks/run.py: the interpreter check and run_process

from mailferry.sandbox.dovecot import DovecotServer

SHARED_PST = harness.REPO.parent / "shared" / "testdata" / "pst" / "outlook.pst"
if not SHARED_PST.exists():
    SHARED_PST = Path("/work/shared/testdata/pst/outlook.pst")
CLI = [sys.executable, "-m", "mailferry.cli"]
COPIES = 3  # corpus copies on disk at the worst moment (see the docstring)
SPARE = 1 << 30  # and Dovecot's indexes, the state files, the page of other users


def make_mbox(path: Path, megabytes: int, seed: int = 2024) -> int:
    """An mboxo file of ``megabytes`` MiB, written as it is generated (flat memory): 5-60 KB text
    messages, every tenth with a 200 KB base64 part; From lines dated as C's asctime writes
    them. Returns the message count."""
    rng = random.Random(seed)
    limit = megabytes << 20
    count = 0
    line = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(76)) + "\n"
    blob = ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw==" + "A" * 28 + "\n") * 2700
    with path.open("w", encoding="ascii") as out:
        written = 0
        while written < limit:
            when = 1_500_000_000 + count * 600
            body = line * rng.randint(60, 800)
            if count % 10 == 9:
                body += "\n--part\nContent-Transfer-Encoding: base64\n\n" + blob
            text = (
                f"From sender{count % 97}@example.com {time.asctime(time.gmtime(when))}\n"
                f"From: Sender {count % 97} <sender{count % 97}@example.com>\n"
                f"To: archive@example.com\nSubject: message {count}\n"
                f"Message-ID: <bench-{count}@example.com>\n"
                f"Date: {email.utils.formatdate(when)}\n\n{body}\n"
            )
            out.write(text)
            written += len(text)
            count += 1
    return count


def check_disk(work: Path, megabytes: int) -> None:
    """Refuse to start a run the disk cannot hold (a 20 GiB mbox needs about 61 GiB)."""
    need = COPIES * (megabytes << 20) + SPARE
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(
            f"{work}: {free >> 30} GiB free, a {megabytes} MiB mbox needs {need >> 30} GiB "
            f"({COPIES} copies of it at once); pick another --workdir or a smaller --mbox-mb"
        )


class Bench:
    """One Dovecot, fresh users, and the rows measured so far."""

    def __init__(self, dovecot: DovecotServer, work: Path, baseline: Path | None) -> None:
        self.dovecot, self.work, self.baseline = dovecot, work, baseline
        self.rows: list[dict[str, Any]] = []
        self.users = 0

    def user(self) -> str:
        self.users += 1
        name = f"arch{self.users}"
        self.dovecot.add_user(name, f"pw-{name}")
        return name

    def drop(self, user: str) -> None:
        shutil.rmtree(self.dovecot.data_dir / "home" / user, ignore_errors=True)

    def imap(self, user: str) -> str:
        return f"imap://{user}@127.0.0.1:{self.dovecot.port}"

    def sync(self, name: str, source: str, target: str, size: int) -> dict[str, Any]:
        """``mailferry sync SOURCE TARGET`` (TARGET: a Dovecot user name or a file URL); first
        with the baseline tree into a throwaway target, when there is one."""
        if self.baseline is not None:
            spare = self.user() if "://" not in target else None
            other = self.imap(spare) if spare else f"{target}-baseline"
            env = {**self._env(source, spare or ""), "PYTHONPATH": str(self.baseline)}
            self.convert(f"{name} (baseline)", self._argv(source, other), size, env)
            if spare:
                self.drop(spare)
            else:
                shutil.rmtree(other.split("://", 1)[1], ignore_errors=True)
        url = target if "://" in target else self.imap(target)
        env = self._env(source, "" if "://" in target else target)
        return self.convert(name, self._argv(source, url), size, env)

    def _argv(self, source: str, target: str) -> list[str]:
        state = self.work / f"state-{len(self.rows)}.db"
        return [*CLI, "sync", source, target, "--state", str(state), "--json"]

    @staticmethod
    def _env(source: str, target_user: str) -> dict[str, str]:
        env = dict(os.environ)
        if source.startswith("imap://"):
            user = source.split("://", 1)[1].split("@", 1)[0]
            env["MAILFERRY_SOURCE_PASSWORD"] = f"pw-{user}"
        if target_user:
            env["MAILFERRY_TARGET_PASSWORD"] = f"pw-{target_user}"
        return env

    def convert(
        self, name: str, argv: list[str], size: int, env: dict[str, str] | None = None
    ) -> dict[str, Any]:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        proc = harness.run_process(argv, env)
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        summary = harness.summary_of(proc.stdout)
        own = summary.get("seconds")  # the run without interpreter start-up
        row: dict[str, Any] = {
            "case": name,
            "seconds": round(proc.seconds, 2),
            "own_seconds": own,
            "mb_per_s": round(size / (1 << 20) / proc.seconds, 1),
            "own_mb_per_s": round(size / (1 << 20) / own, 1) if own else None,
            "peak_rss_mb": round(proc.rss_mb, 1),
            "peak_tree_rss_mb": round(proc.tree_rss_mb, 1),
            "messages": summary.get("messages_copied"),
            "message_mb_per_s": round(summary.get("bytes_copied", 0) / (1 << 20) / own, 1)
            if own and summary.get("bytes_copied")
            else None,
            "load": round(os.getloadavg()[0], 1),
        }
        self.rows.append(row)
        return row


def pst_cases(bench: Bench, pst: Path, copies: int) -> None:
    size = pst.stat().st_size * copies
    if copies > 1:
        grown = bench.work / f"{pst.stem}-x{copies}{pst.suffix}"
        shutil.copyfile(pst, grown)
        pstgrow.rewrite(grown, copies)
        pst = grown
    out = bench.work / f"pst-{pst.stem}"
    bench.sync(f"{pst.name} -> Maildir", f"pst://{pst}", f"maildir://{out}", size)
    bench.sync(f"{pst.name} -> Dovecot", f"pst://{pst}", bench.user(), size)
    converted = bench.work / f"readpst-{pst.stem}"
    converted.mkdir()
    bench.convert(
        f"{pst.name} readpst -> mbox", ["readpst", "-q", "-o", str(converted), str(pst)], size
    )


def mbox_cases(bench: Bench, megabytes: int) -> None:
    mbox = bench.work / "big.mbox"
    started = time.monotonic()
    messages = make_mbox(mbox, megabytes)
    size = mbox.stat().st_size
    print(
        f"generated {mbox}: {size >> 20} MiB, {messages} messages "
        f"in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    label = f"{size >> 20} MiB"
    maildir = bench.work / "mbox-out"
    bench.sync(f"mbox {label} -> Maildir", f"mbox://{mbox}", f"maildir://{maildir}", size)
    user = bench.user()
    from_maildir = bench.sync(f"Maildir {label} -> Dovecot", f"maildir://{maildir}", user, size)
    bench.drop(user)
    source = bench.user()
    from_mbox = bench.sync(f"mbox {label} -> Dovecot", f"mbox://{mbox}", source, size)
    shutil.rmtree(maildir, ignore_errors=True)
    target = bench.user()
    reference = bench.sync(f"IMAP {label} Dovecot -> Dovecot", bench.imap(source), target, size)
    bench.drop(target)
    bench.drop(source)
    mbox.unlink()
    for row in (from_mbox, from_maildir):
        row["vs_imap"] = round(reference["seconds"] / row["seconds"], 2)
        if reference["own_seconds"] and row["own_seconds"]:
            row["vs_imap_own"] = round(reference["own_seconds"] / row["own_seconds"], 2)
    imap = {
        "(baseline)" in row["case"]: row for row in bench.rows if row["case"].startswith("IMAP")
    }
    for row in bench.rows:  # the PSTs (another size): own MB/s over the reference's, same tree
        ref = imap.get("(baseline)" in row["case"])
        pst = row["case"].split(" ")[0].endswith((".pst", ".ost")) and "readpst" not in row["case"]
        if pst and ref and row["own_mb_per_s"] and ref["own_mb_per_s"]:
            row["vs_imap_own_mb"] = round(row["own_mb_per_s"] / ref["own_mb_per_s"], 2)
        if pst and ref and row["message_mb_per_s"] and ref["message_mb_per_s"]:
            row["vs_imap_message_mb"] = round(row["message_mb_per_s"] / ref["message_mb_per_s"], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mbox-mb", type=int, default=1024, help="0: no mbox cases")
    parser.add_argument("--pst", type=Path, action="append", help="default: the shared PST")
    parser.add_argument("--no-pst", action="store_true")
    parser.add_argument("--pst-copies", type=int, default=1, help="grow each PST N times")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--baseline", type=Path, help="another checkout's src/ to run first")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mailferry-archives-"))
    work.mkdir(parents=True, exist_ok=True)
    check_disk(work, args.mbox_mb)
    load = os.getloadavg()
    try:
        with DovecotServer(work / "dovecot") as dovecot:
            bench = Bench(dovecot, work, args.baseline)
            for pst in [] if args.no_pst else args.pst or [SHARED_PST]:
                pst_cases(bench, pst, args.pst_copies)
            if args.mbox_mb:
                mbox_cases(bench, args.mbox_mb)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    report(bench.rows, load)
    return 0


def report(rows: list[dict[str, Any]], load: tuple[float, float, float]) -> None:
    print(f"load average at the start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(
        "| case | seconds | own seconds | MB/s (wall / own) | vs IMAP (wall / own) "
        "| message MB/s own | peak RSS MB (process / with its workers) | messages |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = "-"
        if "vs_imap" in row:
            ratio = f"{row['vs_imap']} / {row.get('vs_imap_own', '-')}"
        elif "vs_imap_own_mb" in row:
            ratio = f"- / {row['vs_imap_own_mb']} per MB"
            if "vs_imap_message_mb" in row:
                ratio += f" ({row['vs_imap_message_mb']} per message MB)"
        speed = f"{row['mb_per_s']} / {_dash(row.get('own_mb_per_s'))}"
        print(
            f"| {row['case']} | {row['seconds']} | {_dash(row['own_seconds'])} "
            f"| {speed} | {ratio} | {_dash(row.get('message_mb_per_s'))} "
            f"| {row['peak_rss_mb']} / {_dash(row.get('peak_tree_rss_mb'))} "
            f"| {_dash(row['messages'])} |"
        )
    results = harness.HERE / "results"
    results.mkdir(exist_ok=True)
    document = {"load_at_start": load, "rows": rows}
    (results / "archives.json").write_text(json.dumps(document, indent=2) + "\n")


def _dash(value: object) -> object:
    return "-" if value is None else value


if __name__ == "__main__":
    sys.exit(main())
