"""How mailferry's own memory grows with the number of calendar items (issue #13: < 150 MB at 100,000).

    .venv/bin/python benchmarks/dav_memory.py [--items 10000,30000,100000] [--per-collection 1000]

The real servers cannot hold this many items in reasonable time (Radicale and Xandikos slow down
per PUT as a collection grows: see benchmarks/README.md), so both sides here are the in-memory
DAV fake (adapters/memory/dav.py, held to the same contract as the real servers), in one child
process per size, with the real SQLite item state on a temporary file. The process's resident
memory is read before and after the source is filled (what one side's items cost in the fake),
then its peak over a first pass, a no-op pass, a pass after the state was lost, and ``verify``.
mailferry's own peak is estimated as that peak minus the memory of both fakes once full (two
times one side's items): a real server keeps its items in its own process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer  # noqa: E402
from mailferry.adapters.store.dav_state import SqlItemStateStore  # noqa: E402
from mailferry.domain.davmodel import CollectionKind, NewCollection  # noqa: E402
from mailferry.sandbox import davcorpus  # noqa: E402
from mailferry.service.davsync import sync_accounts  # noqa: E402
from mailferry.service.davverify import verify_dav  # noqa: E402


def rss_mb() -> float:
    """Resident memory now (/proc/self/statm), in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def fill(server: MemoryDavServer, items: int, per_collection: int) -> None:
    account = MemoryDavAccount(server, "alice")
    home = "/alice/calendars/"
    for n in range(items):
        collection = f"{home}c{n // per_collection}/"
        if n % per_collection == 0:
            account.create_collection(collection, NewCollection(CollectionKind.CALENDAR, f"C{n}"))
        server.store(f"{collection}e{n}.ics", davcorpus.simple_event(f"e{n}@bench", f"E {n}"))


def measure(items: int, per_collection: int, workdir: Path) -> dict[str, object]:
    src, dst = MemoryDavServer(), MemoryDavServer()
    src.add_user("alice")
    dst.add_user("alice")
    base = rss_mb()
    fill(src, items, per_collection)
    one_side = rss_mb() - base
    state = SqlItemStateStore.open_sqlite(workdir / f"state-{items}.sqlite3")
    lost = SqlItemStateStore.open_sqlite(workdir / f"lost-{items}.sqlite3")

    def account(server: MemoryDavServer) -> MemoryDavAccount:
        return MemoryDavAccount(server, "alice")

    steps = {
        "first": lambda: sync_accounts(account(src), account(dst), state, "p"),
        "noop": lambda: sync_accounts(account(src), account(dst), state, "p"),
        "lost_state": lambda: sync_accounts(account(src), account(dst), lost, "p"),
        "verify": lambda: verify_dav(account(src), account(dst), state, "p"),
    }
    results: dict[str, object] = {"items": items, "one_side_in_the_fake_mb": round(one_side, 1)}
    for name, step in steps.items():
        started = time.monotonic()
        outcome = step()
        results[name] = {
            "seconds": round(time.monotonic() - started, 1),
            "peak_rss_mb": round(peak_mb(), 1),
            "copied": getattr(outcome, "items_copied", None),
            "identical": getattr(outcome, "identical", None),
        }
    state.close()
    lost.close()
    results["mailferry_peak_estimate_mb"] = round(peak_mb() - base - 2 * one_side, 1)
    results["state_bytes_per_item"] = round(
        (workdir / f"state-{items}.sqlite3").stat().st_size / items
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", default="10000,30000,100000")
    parser.add_argument("--per-collection", type=int, default=1000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: measure one size
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="mailferry-davmem-") as tmp:
            print(json.dumps(measure(args.one, args.per_collection, Path(tmp))), flush=True)
        return
    for items in (int(n) for n in args.items.split(",")):
        command = [
            sys.executable,
            __file__,
            "--one",
            str(items),
            "--per-collection",
            str(args.per_collection),
        ]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
