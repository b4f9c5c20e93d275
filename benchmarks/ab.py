"""Before and after in one run: the same corpus copied by two source trees, runs alternated.

    python3 benchmarks/ab.py --before /tmp/old-checkout/src [--latency 0,0.010,0.050] [--runs 5]

``run.py`` measures one tree; on this 2-core VM a single full pass of the quick corpus varies by
a factor of two from run to run (interpreter start-up alone takes 0.8-1.8 s, and the disk's
flushes come and go), so a change of 10-20 % cannot be read from two of its runs made minutes
apart. This script loads the corpus once into a source Dovecot, then for each run copies it into
a fresh target user with each tree in turn (the order alternating from run to run), on loopback
and through ``Proxy`` pairs adding each ``--latency`` (seconds each way; with ``--exchange``,
also into a target offering what Exchange Online offers), with ``os.sync()`` before every copy.
It prints, per tree and scenario, the median and the minimum of the wall time (process start to
exit) and of the seconds mailferry reports itself ("own": the run without
interpreter start-up and logins), and every wall time. Each copy must copy the whole corpus.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run as harness  # benchmarks/run.py: its import re-runs this script with the repo's venv

from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy

REPO = harness.REPO


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other checkout's src/")
    parser.add_argument("--after", type=Path, default=REPO / "src", help="default: this src/")
    parser.add_argument("--latency", default="0,0.010,0.050", help="seconds each way")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000, help="1000: the quick corpus")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--exchange",
        action="store_true",
        help="also into an Exchange-like target (LITERAL+, no MULTIAPPEND, no CONDSTORE) at "
        "each latency",
    )
    return parser.parse_args()


def copy_once(
    tree: Path, ports: tuple[int, int], target: DovecotServer, user: str, state: Path
) -> tuple[float, float, int]:
    """(wall seconds, mailferry's own seconds, messages copied) of one full pass by ``tree``."""
    target.add_user(user, f"pw-{user}")
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "MAILFERRY_SOURCE_PASSWORD": "pw-source",
        "MAILFERRY_TARGET_PASSWORD": f"pw-{user}",
    }
    argv = [sys.executable, "-m", "mailferry.cli", "sync", f"imap://source@127.0.0.1:{ports[0]}"]
    argv += [f"imap://{user}@127.0.0.1:{ports[1]}", "--state", str(state), "--json"]
    os.sync()
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    shutil.rmtree(target.data_dir / "home" / user, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: exit {done.returncode}: {done.stderr[-800:]}")
    summary = json.loads(done.stdout)
    return wall, float(summary["seconds"]), int(summary["messages_copied"])


def main() -> int:
    args = parse_args()
    latencies = [float(x) for x in args.latency.split(",") if x]
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mailferry-ab-")))
        source = stack.enter_context(DovecotServer(work / "source"))
        target = stack.enter_context(DovecotServer(work / "target"))
        source.add_user("source", "pw-source")
        plan = harness.corpus.plan_corpus(args.messages, args.seed, quick=args.messages <= 1000)
        harness.corpus.load(source.host, source.port, "source", "pw-source", plan)
        targets = [("", target)]
        if args.exchange:
            exchange = DovecotServer(work / "exchange", capability=harness.EXCHANGE_CAPABILITY)
            targets.append(("exchange ", stack.enter_context(exchange)))
        scenarios = {"loopback": ((source.port, target.port), target)}
        for latency in latencies:
            for label, server in targets:
                up = stack.enter_context(Proxy(source.host, source.port, latency=latency))
                down = stack.enter_context(Proxy(server.host, server.port, latency=latency))
                scenarios[f"{label}{latency * 2000:.0f} ms RTT"] = ((up.port, down.port), server)
        copies = 0
        for run in range(args.runs):
            order = list(trees.items()) if run % 2 == 0 else list(reversed(trees.items()))
            for scenario, (pair, server) in scenarios.items():
                for name, tree in order:
                    copies += 1
                    state = work / f"state-{copies}.sqlite3"
                    wall, own, copied = copy_once(tree, pair, server, f"t{copies}", state)
                    if copied != len(plan.messages):
                        raise SystemExit(f"{name} copied {copied} of {len(plan.messages)}")
                    found.setdefault((scenario, name), []).append((wall, own))
    print(f"{len(plan.messages)} messages, {args.runs} runs, {time.strftime('%Y-%m-%d %H:%M')}")
    for (scenario, name), values in found.items():
        print(row(scenario, name, values))
    return 0


def row(scenario: str, name: str, values: list[tuple[float, float]]) -> str:
    walls = sorted(wall for wall, _ in values)
    owns = sorted(own for _, own in values)
    return (
        f"{scenario:>20} {name:6} wall median {statistics.median(walls):.2f} min {walls[0]:.2f}"
        f"  own median {statistics.median(owns):.2f} min {owns[0]:.2f}"
        f"  walls {[round(w, 2) for w in walls]}"
    )


if __name__ == "__main__":
    sys.exit(main())
