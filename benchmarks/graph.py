#!/usr/bin/env python3
"""mailferry's Microsoft 365 mailbox benchmark: one whole mailbox through the FAKE Graph.

    python3 benchmarks/graph.py                       # 5,000 and 20,000 items, 20 ms round trips
    python3 benchmarks/graph.py --sizes 2000 --delay 0.02 --backend memory
    python3 benchmarks/graph.py --real-limits         # Graph's 10,000 requests / 10 min paced too

The parent starts the FAKE Graph (sandbox/graph, HTTPS on 127.0.0.1, ``delay`` per request, 4
concurrent requests per mailbox, a 5th answered 429) and fills a source mailbox with N mails in
a few folders; each size is then migrated by a child process (``--child``) through the port
(``ExchangeMailbox``: ``GraphMailbox`` over a ``GraphSession``) into a fresh target mailbox with
``sync_mailboxes`` and a SQLite state, so that the child's peak RSS is mailferry's alone (the
fake's store lives in the parent). ``--backend memory`` runs the same child on the in-memory
fake with the same delay per request instead (no HTTP).

By default the 10,000 requests / 10 minutes window is lifted on both sides (the session and the
fake): the benchmark measures how fast the machinery goes within Graph's concurrency limit
(4 in flight / 20 ms = 200 requests/s at most); at the sustained request limit (16.7/s) a mailbox
of N items takes at least about (N + N/20) / 16.7 seconds whatever the tool, which it prints too.
Not part of the tests; prints one JSON line per size and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from mailferry.adapters.graph.mailbox import GraphMailbox  # noqa: E402
from mailferry.adapters.graph.session import GraphLimits, GraphSession  # noqa: E402
from mailferry.adapters.memory.exchange import MemoryExchange, MemoryMailbox  # noqa: E402
from mailferry.adapters.store.graph_state import SqlMailboxStateStore  # noqa: E402
from mailferry.adapters.tls import TlsOptions  # noqa: E402
from mailferry.domain.mailboxports import ExchangeMailbox  # noqa: E402
from mailferry.service.graphcontext import GraphSyncOptions  # noqa: E402
from mailferry.service.graphsync import sync_mailboxes  # noqa: E402

ROLES = (
    "User.Read.All",
    "MailboxFolder.ReadWrite.All",
    "MailboxItem.Read.All",
    "MailboxItem.ImportExport.All",
)
APP = "mailferry-benchmark"
FOLDERS = ("inbox", "sentitems", "Projects", "Archive 2024")
UNLIMITED = 10**9


class Tokens:
    def __init__(self, value: str) -> None:
        self.value = value

    def token(self, force_refresh: bool = False) -> str:  # noqa: ARG002
        return self.value


def fill_fake(fake: Any, upn: str, items: int) -> None:
    """N mails spread over FOLDERS of a fresh FAKE Graph mailbox."""
    from mailferry.sandbox.graph import mailboxfill  # noqa: PLC0415

    box = fake.store.add_mailbox(upn)
    folders = []
    for name in FOLDERS:
        known = box.well_known(name) if name in ("inbox", "sentitems") else None
        folders.append(known or fake.store.add_folder(box, box.root_id, name, "IPF.Note"))
    for n in range(items):
        body = f"Message {n} " + "lorem ipsum " * (20 + n % 200)
        mailboxfill.add_mail(fake.store, box, folders[n % len(folders)], subject=f"m{n}", body=body)


def graph_factory(args: argparse.Namespace) -> Callable[[str], ExchangeMailbox]:
    limits = GraphLimits() if args.real_limits else GraphLimits(requests=UNLIMITED)
    tls = TlsOptions(ca_file=Path(args.ca_file))

    def open_box(upn: str) -> ExchangeMailbox:
        session = GraphSession(args.url, upn, Tokens(args.token), tls, limits=limits)
        return GraphMailbox(session, upn)

    return open_box


def memory_pair(items: int, delay: float) -> tuple[ExchangeMailbox, ExchangeMailbox]:
    source, target = MemoryExchange("src"), MemoryExchange("dst")
    folders = [source.well_known("inbox"), source.well_known("sentitems")]
    folders += [source.add_folder(name) for name in FOLDERS[2:]]
    for n in range(items):
        body = f"Message {n} " + "lorem ipsum " * (20 + n % 200)
        source.add(folders[n % len(folders)], body)
    for side in (source, target):
        side.delay, side.concurrency = delay, 4
    return MemoryMailbox(source), MemoryMailbox(target)


def child(args: argparse.Namespace) -> None:
    """One migration of one size; prints its figures as one JSON line."""
    if args.backend == "memory":
        source, target = memory_pair(args.items, args.delay)
    else:
        open_box = graph_factory(args)
        source, target = open_box(args.source), open_box(args.target)
    samples: list[float] = []
    done = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(samples, done), daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        state = SqlMailboxStateStore.open_sqlite(Path(tmp) / "state.sqlite")
        started = time.monotonic()
        summary = sync_mailboxes(source, target, state, "bench", GraphSyncOptions(concurrency=4))
        seconds = time.monotonic() - started
        again = time.monotonic()
        second = sync_mailboxes(source, target, state, "bench", GraphSyncOptions(concurrency=4))
        incremental = time.monotonic() - again
        state.close()
    done.set()
    sampler.join()
    copied = sum(r.copied for r in summary.workloads.values())
    print(
        json.dumps(
            {
                "backend": args.backend,
                "items": args.items,
                "copied": copied,
                "failed": summary.items_failed,
                "seconds": round(seconds, 2),
                "items_per_s": round(copied / seconds, 1),
                "throttled": summary.throttled,
                "waited_s": round(summary.waited, 2),
                "incremental_s": round(incremental, 2),
                "incremental_copied": sum(r.copied for r in second.workloads.values()),
                # VmHWM: this process's own high-water mark. ru_maxrss is not: the child is
                # spawned by vfork, and execve folds the parent's high-water RSS (the FAKE
                # Graph's store, growing with N) into the child's ru_maxrss
                "peak_rss_mb": round(own_peak_rss(), 1),
                # RSS at a quarter, half, three quarters and the end of the run: flat or growing
                "rss_mb_by_quarter": [
                    round(samples[min(len(samples) - 1, len(samples) * q // 4)], 1)
                    for q in (1, 2, 3, 4)
                ]
                if samples
                else [],
            }
        ),
        flush=True,
    )


def own_peak_rss() -> float:
    """VmHWM (MB): the peak resident set of this process since its exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_rss(samples: list[float], done: threading.Event) -> None:
    """The process's resident set (MB) every half second until ``done``."""
    status = Path("/proc/self/status")
    while not done.wait(0.5):
        lines = status.read_text().splitlines()
        samples.extend(int(n.split()[1]) / 1024 for n in lines if n.startswith("VmRSS:"))


def parent(args: argparse.Namespace) -> None:
    results = []
    for size in args.sizes:
        command = [
            sys.executable,
            __file__,
            "--child",
            "--items",
            str(size),
            "--delay",
            str(args.delay),
        ]
        command += ["--backend", args.backend] + (["--real-limits"] if args.real_limits else [])
        if args.backend == "graph":
            results.append(run_on_fake(args, size, command))
        else:
            results.append(json.loads(subprocess.check_output(command, text=True).splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(
        "\n| items | copied | s | items/s | throttled | incremental s | peak RSS MB | "
        "at 16.7 req/s (s) |\n|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        floor = (r["items"] + r["items"] / 20) / (10_000 / 600)
        print(
            f"| {r['items']} | {r['copied']} | {r['seconds']} | {r['items_per_s']} | "
            f"{r['throttled']} | {r['incremental_s']} | {r['peak_rss_mb']} | {floor:.0f} |"
        )


def run_on_fake(args: argparse.Namespace, size: int, command: list[str]) -> dict[str, Any]:
    from mailferry.sandbox.graph.server import FakeGraph  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        requests = 10_000 if args.real_limits else UNLIMITED
        with FakeGraph(Path(tmp), delay=args.delay, requests=requests) as fake:
            source, target = f"src{size}@contoso.com", f"dst{size}@contoso.com"
            fill_fake(fake, source, size)
            fake.store.add_mailbox(target)
            token = fake.issue_token(APP, ROLES, lifetime=36_000)
            command += ["--url", fake.url, "--ca-file", str(fake.ca_file), "--token", token]
            command += ["--source", source, "--target", target]
            out = subprocess.run(command, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:])
            return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--backend", choices=("graph", "memory"), default="graph")
    parser.add_argument("--real-limits", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--items", "--url", "--ca-file", "--token", "--source", "--target"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.items = int(args.items)
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
