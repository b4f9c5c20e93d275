#!/usr/bin/env python3
"""Workers on PostgreSQL: one batch of mailboxes with 1, 2 and 3 `mailferry worker` processes,
on loopback and through the latency proxy (both servers), on this machine.

    python3 benchmarks/workers.py [--mailboxes 50] [--workers 1,2,3] [--latency 0.010]

Loads the source mailboxes once (the sandbox corpus, ~72 messages in 15 folders at --scale 1),
then for each scenario and worker count: a new database (`db upgrade`), new empty target users,
one batch, N workers started with `--until-idle`; the wall time runs from the first worker's
start to the last one's exit. Prints mailboxes/hour, MB/s, the database statements per copied
message (pg_stat_statements: every statement of the mailferry role on that database, the
queue's included), and the scheduler's overhead per job: one worker at concurrency 1 running
the incremental pass (nothing to copy), wall time minus the passes' own time, per job.
Writes benchmarks/results/workers.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
try:
    import mailferry
except ImportError:  # run with a Python that lacks the package: use the repository's venv
    venv = REPO / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.executable) != venv:
        os.execv(venv, [str(venv), *sys.argv])  # noqa: S606 - the same script, another Python
    raise

from mailferry.sandbox.corpus import build_corpus, connect, load_corpus  # noqa: E402
from mailferry.sandbox.dovecot import DovecotServer  # noqa: E402
from mailferry.sandbox.postgres import PostgresServer  # noqa: E402
from mailferry.sandbox.proxy import Proxy  # noqa: E402

_STATEMENTS = (
    "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s"
    " JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid"
    " WHERE r.rolname = 'mailferry' AND d.datname = %s"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mailferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mailferry.cli", *args],
        env=env, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"mailferry {' '.join(args)}: {result.stderr.strip()}")
    return result


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, stack: ExitStack) -> None:
        self.args = args
        self.work = work
        self.pg = stack.enter_context(
            PostgresServer(work / "pg", {"shared_preload_libraries": "pg_stat_statements"})
        )
        self.source = stack.enter_context(DovecotServer(work / "src", delimiter="/"))
        self.target = stack.enter_context(DovecotServer(work / "dst", delimiter="."))
        self.proxies = {
            "loopback": (self.source.port, self.target.port),
        }
        if args.latency > 0:
            wan_s = stack.enter_context(Proxy("127.0.0.1", self.source.port, latency=args.latency))
            wan_t = stack.enter_context(Proxy("127.0.0.1", self.target.port, latency=args.latency))
            self.proxies["wan"] = (wan_s.port, wan_t.port)
        self.sources: list[tuple[str, str]] = []
        self.runs = 0

    def load(self) -> int:
        """The source mailboxes, loaded 4 at a time; their total size in bytes."""

        def one(i: int) -> int:
            user, password = f"src{i}", f"pw-src{i}"
            self.source.add_user(user, password)
            corpus = build_corpus(1000 + i, scale=self.args.scale)
            client = connect(self.source, user, password)
            try:
                load_corpus(client, corpus, self.source.delimiter)
            finally:
                client.logout()
            return corpus.total_bytes

        with ThreadPoolExecutor(4) as pool:
            sizes = list(pool.map(one, range(self.args.mailboxes)))
        self.sources = [(f"src{i}", f"pw-src{i}") for i in range(self.args.mailboxes)]
        return sum(sizes)

    def setup(self, scenario: str) -> tuple[dict[str, str], str]:
        """A new database, new target users, the endpoints and the batch, started (detached)."""
        self.runs += 1
        run = self.runs
        name = f"bench{run}"
        url = self.pg.create_database(name)
        with self.pg.admin(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILFERRY_", "PG"))}
        env["MAILFERRY_DATABASE"] = url
        env["MAILFERRY_STATE"] = str(self.work / f"keys{run}" / "state.sqlite3")
        lines = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
        for i, (su, sp) in enumerate(self.sources):
            tu = f"r{run}t{i}"
            self.target.add_user(tu, f"pw-{tu}")
            lines.append(f"{tu}@new.example,{su},{sp},{tu},pw-{tu}")
        csv_path = self.work / f"wave{run}.csv"
        csv_path.write_text("\r\n".join(lines) + "\r\n")
        src_port, dst_port = self.proxies[scenario]
        cap = str(self.args.max_connections)
        for args in (
            ["db", "upgrade"],
            ["endpoint", "add", "old", "--host", "127.0.0.1", "--port", str(src_port),
             "--security", "none", "--max-connections", cap],
            ["endpoint", "add", "new", "--host", "127.0.0.1", "--port", str(dst_port),
             "--security", "none", "--max-connections", cap],
            ["batch", "create", "wave", "--source", "old", "--target", "new", "--csv", str(csv_path)],
            ["batch", "start", "wave", "--detach"],
        ):  # fmt: skip
            mailferry(*args, env=env)
        return env, name

    def workers(self, env: dict[str, str], count: int, concurrency: int) -> float:
        """``count`` workers with --until-idle; seconds from the first start to the last exit."""
        argv = [sys.executable, "-m", "mailferry.cli", "worker", "--until-idle", "--poll", "0.2"]
        argv += ["--concurrency", str(concurrency)]
        started = time.monotonic()
        processes = [
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(count)
        ]
        for process in processes:
            if process.wait(timeout=1800) != 0:
                raise RuntimeError(f"a worker exited with {process.returncode}")
        return time.monotonic() - started

    def statements(self, name: str) -> int:
        with self.pg.admin(name) as conn:
            row = conn.execute(_STATEMENTS, (name,)).fetchone()
        return int(row[0]) if row else 0

    def reset(self, name: str) -> None:
        with self.pg.admin(name) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")

    def measure(self, scenario: str, count: int) -> dict[str, object]:
        env, name = self.setup(scenario)
        self.reset(name)
        wall = self.workers(env, count, self.args.concurrency)
        statements = self.statements(name)
        report = json.loads(mailferry("batch", "status", "wave", "--json", env=env).stdout)
        if report["counts"] != {"synced": self.args.mailboxes}:
            raise RuntimeError(f"{scenario}/{count}: {report['counts']}")
        messages = sum(int(m["messages_copied"]) for m in report["mailboxes"])
        nbytes = sum(int(m["bytes_copied"]) for m in report["mailboxes"])
        row: dict[str, object] = {
            "scenario": scenario,
            "workers": count,
            "concurrency": self.args.concurrency,
            "mailboxes": self.args.mailboxes,
            "seconds": round(wall, 1),
            "mailboxes_per_hour": round(self.args.mailboxes * 3600 / wall),
            "mb_per_s": round(nbytes / wall / 1e6, 2),
            "messages": messages,
            "statements_per_message": round(statements / max(messages, 1), 1),
        }
        if count == 1:
            row["overhead_per_job_s"] = self.overhead(env, name)
        log(f"{row}")
        return row

    def overhead(self, env: dict[str, str], name: str) -> float:
        """One worker at concurrency 1 runs the incremental pass (nothing new): what the wall
        time holds beyond the passes themselves, per job (the worker's start included)."""
        mailferry("batch", "sync", "wave", "--detach", env=env)
        wall = self.workers(env, 1, 1)
        with self.pg.admin(name) as conn:
            row = conn.execute(
                "SELECT sum(finished - started), count(*) FROM batch_runs r"
                " WHERE r.id > (SELECT max(id) - %s FROM batch_runs)",
                (self.args.mailboxes,),
            ).fetchone()
        passes = float(row[0] or 0.0) if row else 0.0
        return round((wall - passes) / self.args.mailboxes, 3)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=50)
    parser.add_argument("--scale", type=int, default=1, help="corpus scale per mailbox")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to compare")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker")
    parser.add_argument("--max-connections", type=int, default=32, help="cap per endpoint")
    parser.add_argument(
        "--latency", type=float, default=0.010, help="seconds each way (0.010: 20 ms round trip)"
    )
    return parser.parse_args()


def table(rows: list[dict[str, object]]) -> str:
    head = (
        "| scenario | workers | seconds | mailboxes/h | MB/s | statements/message | overhead/job |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        over = r.get("overhead_per_job_s")
        lines.append(
            f"| {r['scenario']} | {r['workers']} | {r['seconds']} | {r['mailboxes_per_hour']} |"
            f" {r['mb_per_s']} | {r['statements_per_message']} |"
            f" {'' if over is None else f'{over} s'} |"
        )
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mf-workers-") as tmp, ExitStack() as stack:
        bench = Bench(args, Path(tmp), stack)
        log(f"loading {args.mailboxes} source mailboxes")
        total = bench.load()
        log(f"loaded {total / 1e6:.1f} MB")
        for scenario in bench.proxies:
            rows += [bench.measure(scenario, count) for count in counts]
    out = HERE / "results" / "workers.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    print(f"{args.mailboxes} mailboxes, {total / 1e6:.1f} MB, concurrency {args.concurrency}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
