"""Archives: a PST and a large generated mbox into Maildir and into Dovecot, with `readpst`.

    python3 benchmarks/archives.py                  # a 1 GiB mbox, the shared outlook.pst
    python3 benchmarks/archives.py --mbox-mb 2048 --pst /path/other.pst

Each conversion is one `mailferry sync` process (wall time from process start, so interpreter
start-up is included; peak RSS of that process alone, as `run.py` measures it); `readpst -o DIR`
(Debian `pst-utils`) converts the same PST in the same run. MB/s is the source file's size over
the wall time. Prints a Markdown table and writes `benchmarks/results/archives.json`.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import run as harness  # benchmarks/run.py: the interpreter check and run_process

from mailferry.sandbox.dovecot import DovecotServer

SHARED_PST = harness.REPO.parent / "shared" / "testdata" / "pst" / "outlook.pst"
if not SHARED_PST.exists():
    SHARED_PST = Path("/work/shared/testdata/pst/outlook.pst")
CLI = [sys.executable, "-m", "mailferry.cli"]


def make_mbox(path: Path, megabytes: int, seed: int = 2024) -> int:
    """An mboxo file of ``megabytes`` MiB: 5-60 KB text messages, every tenth with a 200 KB
    base64 part; dated From lines. Returns the message count."""
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


def convert(name: str, argv: list[str], size: int, env: dict[str, str] | None = None) -> dict:
    proc = harness.run_process(argv, env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    copied = own = None
    if proc.stdout.strip().startswith("{"):
        summary = json.loads(proc.stdout)
        copied, own = summary.get("messages_copied"), summary.get("seconds")
    return {
        "case": name,
        "seconds": round(proc.seconds, 2),
        "own_seconds": own,  # what mailferry reports: the run without interpreter start-up
        "mb_per_s": round(size / (1 << 20) / proc.seconds, 1),
        "peak_rss_mb": round(proc.rss_mb, 1),
        "messages": copied,
    }


def sync(source: str, target: str, state: Path) -> list[str]:
    return [*CLI, "sync", source, target, "--state", str(state), "--json"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mbox-mb", type=int, default=1024)
    parser.add_argument("--pst", type=Path, action="append", help="default: the shared PST")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mailferry-archives-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        with DovecotServer(work / "dovecot") as dovecot:
            for pst in args.pst or [SHARED_PST]:
                size = pst.stat().st_size
                rows.append(
                    convert(
                        f"{pst.name} -> Maildir",
                        sync(f"pst://{pst}", f"maildir://{work}/pst-{pst.stem}", work / "a.db"),
                        size,
                    )
                )
                rows.append(
                    _into_dovecot(dovecot, f"{pst.name} -> Dovecot", f"pst://{pst}", size, work)
                )
                out = work / f"readpst-{pst.stem}"
                out.mkdir()
                rows.append(
                    convert(
                        f"{pst.name} readpst -> mbox",
                        ["readpst", "-q", "-o", str(out), str(pst)],
                        size,
                    )
                )
            mbox = work / "big.mbox"
            messages = make_mbox(mbox, args.mbox_mb)
            size = mbox.stat().st_size
            print(f"generated {mbox}: {size >> 20} MiB, {messages} messages", file=sys.stderr)
            rows.append(
                convert(
                    f"mbox {size >> 20} MiB -> Maildir",
                    sync(f"mbox://{mbox}", f"maildir://{work}/mbox-out", work / "b.db"),
                    size,
                )
            )
            rows.append(
                _into_dovecot(
                    dovecot, f"mbox {size >> 20} MiB -> Dovecot", f"mbox://{mbox}", size, work
                )
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print("| case | seconds | own seconds | MB/s | peak RSS MB | messages |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['case']} | {row['seconds']} | {_dash(row['own_seconds'])} "
            f"| {row['mb_per_s']} | {row['peak_rss_mb']} | {_dash(row['messages'])} |"
        )
    results = harness.HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "archives.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _dash(value: object) -> object:
    return "-" if value is None else value


_users = iter(range(1, 1000))


def _into_dovecot(dovecot: DovecotServer, name: str, source: str, size: int, work: Path) -> dict:
    user = f"arch{next(_users)}"
    dovecot.add_user(user, f"pw-{user}")
    target = f"imap://{user}@127.0.0.1:{dovecot.port}"
    env = {**harness.os.environ, "MAILFERRY_TARGET_PASSWORD": f"pw-{user}"}
    return convert(name, sync(source, target, work / f"{user}.db"), size, env)


if __name__ == "__main__":
    sys.exit(main())
