#!/usr/bin/env python3
"""mailferry's calendar and contacts benchmark against vdirsyncer, see benchmarks/README.md.

    python3 benchmarks/dav.py [--quick] [--tools vdirsyncer,mailferry] [--reverse]
    python3 benchmarks/dav.py --rss-items 100000          # the memory scenario alone

Seeds a corpus (davcorpus.py) into a source Radicale user, then copies it one way into a fresh
Xandikos user per tool: vdirsyncer (discover + sync, then a second sync) and mailferry (sync, an
incremental sync, verify). Each tool runs as its own process: wall time and peak RSS (wait4).
What arrived is counted on the target by PROPFIND. Prints a Markdown table and writes
benchmarks/results/dav-latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# run.py re-executes this script with the repository's venv when mailferry is not importable
from run import Process, log, machine, run_process, summary_of  # isort: skip

import davclients
import davcorpus
from davclients import Login

from mailferry.sandbox.davserver import DavServer
from mailferry.sandbox.radicale import RadicaleServer
from mailferry.sandbox.xandikos import XandikosServer

HERE = Path(__file__).resolve().parent
TOOLS = ("vdirsyncer", "mailferry")


@dataclass
class Measure:
    scenario: str  # radicale->xandikos | xandikos->radicale | memory
    tool: str  # vdirsyncer | mailferry
    phase: str  # full | incremental
    seconds: float  # wall clock of the process(es), start to exit
    items: int  # the corpus's items (an incremental pass examines them all)
    rss_mb: float
    arrived: int | None = None  # items counted on the target afterwards
    internal_seconds: float | None = None  # mailferry's own "seconds" from --json
    copied: int | None = None  # mailferry's own "items_copied" from --json
    by_collection: dict[str, int] = field(default_factory=dict)  # arrived, per target href
    verified: bool | None = None
    ok: bool = True
    note: str = ""


@dataclass
class Side:
    server: DavServer
    login: Login

    @property
    def url(self) -> str:  # the account URL mailferry is given
        return self.server.url(self.login.user)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.measures: list[Measure] = []
        self.seeding: list[dict[str, object]] = []
        self.users = 0

    def fresh(self, server: DavServer, stem: str) -> Side:
        self.users += 1
        user = f"{stem}{self.users}"
        server.add_user(user, f"pw-{user}")
        base = server.url(user).replace(f"{user}@", "").rstrip("/")
        return Side(server, Login(base, user, f"pw-{user}", server.ca_file))

    def seed(self, server: DavServer, corpus: davcorpus.DavCorpus, label: str) -> Side:
        side = self.fresh(server, "src")
        start = time.monotonic()
        if isinstance(server, RadicaleServer):
            how = "files written into Radicale's storage"
            items, size = davclients.seed_radicale(
                server.data_dir / "collections", side.login.user, corpus
            )
        else:
            how = f"PUTs, {self.args.put_threads} in flight"
            items, size = davclients.seed_by_put(side.login, corpus, self.args.put_threads)
        seeded = time.monotonic() - start
        counts = davclients.count_items(side.login)  # also fills Radicale's item cache
        counted = time.monotonic() - start - seeded
        record = {
            "scenario": label,
            "how": how,
            "items": items,
            "bytes": size,
            "seconds": round(seeded, 1),
            "count_seconds": round(counted, 1),
            "counted": sum(counts.values()),
        }
        self.seeding.append(record)
        log(
            f"seeded {label}: {items} items, {size / 1e6:.1f} MB by {how} in {seeded:.1f} s; "
            f"PROPFIND count {sum(counts.values())} in {counted:.1f} s"
        )
        if sum(counts.values()) != corpus.items:
            raise SystemExit(f"the source holds {sum(counts.values())} items, not {corpus.items}")
        return side

    # -- the tools ----------------------------------------------------------------------------

    def vdirsyncer(self, scenario: str, source: Side, target: Side, items: int) -> None:
        folder = Path(tempfile.mkdtemp(prefix="vdirsyncer-", dir=self.workdir))
        config = davclients.vdirsyncer_config(folder, source.login, target.login)
        env = {
            **os.environ,
            "VDIRSYNCER_A_PASSWORD": source.login.password,
            "VDIRSYNCER_B_PASSWORD": target.login.password,
        }
        binary = str(Path(sys.executable).with_name("vdirsyncer"))
        discover = run_process([binary, "-c", str(config), "discover"], env)
        for phase in ("full", "incremental"):
            proc = run_process([binary, "-c", str(config), "sync"], env)
            if phase == "full":  # discovery is part of vdirsyncer's first copy
                proc = Process(
                    proc.returncode or discover.returncode,
                    discover.stdout + proc.stdout,
                    discover.stderr + proc.stderr,
                    discover.seconds + proc.seconds,
                    max(discover.rss_mb, proc.rss_mb),
                )
            self.record(
                Measure(scenario, "vdirsyncer", phase, proc.seconds, items, proc.rss_mb),
                proc,
                target,
            )
        # its copy judged by mailferry verify too, from no state (as run.py does for doveadm)
        self.verify(scenario, source, target, self.workdir / f"state-{target.login.user}.sqlite3")

    def mailferry(self, command: str, source: Side, target: Side, state: Path) -> Process:
        argv = [sys.executable, "-m", "mailferry.cli", command, source.url, target.url]
        argv += ["--state", str(state), "--json"]
        for side, login in (("source", source.login), ("target", target.login)):
            if login.ca_file:
                argv += [f"--{side}-ca-file", str(login.ca_file)]
        if command == "sync":
            argv += self.args.mailferry_arg
        env = {
            **os.environ,
            "MAILFERRY_SOURCE_PASSWORD": source.login.password,
            "MAILFERRY_TARGET_PASSWORD": target.login.password,
        }
        return run_process(argv, env)

    def mailferry_run(self, scenario: str, source: Side, target: Side, items: int) -> None:
        state = self.workdir / f"state-{target.login.user}.sqlite3"
        for phase in ("full", "incremental"):
            proc = self.mailferry("sync", source, target, state)
            measure = Measure(scenario, "mailferry", phase, proc.seconds, items, proc.rss_mb)
            summary = summary_of(proc.stdout)
            seconds, copied = summary.get("seconds"), summary.get("items_copied")
            measure.internal_seconds = float(seconds) if isinstance(seconds, int | float) else None
            measure.copied = copied if isinstance(copied, int) else None
            expected = items if phase == "full" else 0
            if measure.copied is not None and measure.copied != expected:
                measure.ok, measure.note = False, f"copied {measure.copied}, expected {expected}"
            self.record(measure, proc, target)
            if not measure.ok and phase == "full":
                return  # an incremental pass and verify over a failed copy say nothing more
        self.verify(scenario, source, target, state)

    def verify(self, scenario: str, source: Side, target: Side, state: Path) -> None:
        """``mailferry verify``: exit 0 the same, 1 differences; else it could not compare."""
        check = self.mailferry("verify", source, target, state)
        verdict = {0: True, 1: False}.get(check.returncode)
        for measure in self.measures[-2:]:
            measure.verified = verdict
            if verdict is None:
                measure.note += f" verify could not compare (exit {check.returncode})"
        if check.returncode != 0:
            output = (check.stdout + check.stderr)[-1500:]
            log(f"{scenario} verify of {target.login.user} exit {check.returncode}: {output}")

    def record(self, measure: Measure, proc: Process, target: Side) -> None:
        measure.by_collection = davclients.count_items(target.login)
        measure.arrived = sum(measure.by_collection.values())
        problems = [measure.note] if measure.note else []
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-300:].replace("\n", " / ")
            problems.append(f"exit {proc.returncode}: {tail}")
        if measure.arrived != measure.items:
            problems.append(f"{measure.items - measure.arrived} items missing on the target")
        measure.ok = measure.ok and not problems
        measure.note = "; ".join(problems)
        self.measures.append(measure)
        log(
            f"{measure.scenario} {measure.tool} {measure.phase}: {measure.seconds:.1f} s, "
            f"{measure.rss_mb:.0f} MB RSS, {measure.arrived}/{measure.items} items on the target"
            + ("" if measure.ok else f" FAILED {measure.note}")
        )

    def scenario(self, source_server: DavServer, target_server: DavServer) -> None:
        corpus = self.args.corpus
        label = f"{source_server.name}->{target_server.name}"
        source = self.seed(source_server, corpus, label)
        for tool in self.args.tools:
            target = self.fresh(target_server, tool[:2])
            if tool == "vdirsyncer":
                self.vdirsyncer(label, source, target, corpus.items)
            else:
                self.mailferry_run(label, source, target, corpus.items)

    def memory(self, source_server: DavServer, target_server: DavServer) -> None:
        items = self.args.rss_items
        corpus = davcorpus.DavCorpus(
            events=items,
            recurring=items // 10,
            contacts=0,
            calendars=self.args.rss_collections,
            address_books=0,
            seed=self.args.seed,
            small=True,
        )
        source = self.seed(source_server, corpus, "memory")
        target = self.fresh(target_server, "rss")
        self.mailferry_run("memory", source, target, items)


# -- summary ----------------------------------------------------------------------------------


def table(measures: list[Measure]) -> str:
    lines = [
        "| scenario | tool | pass | items | items/s | seconds | peak RSS MB | arrived | verify | notes |",
        "|" + "---|" * 10,
    ]
    for m in measures:
        notes = [f"mailferry's own {m.internal_seconds} s"] if m.internal_seconds else []
        if not m.ok:
            notes.append("FAILED: " + m.note)
        verify = {True: "ok", False: "DIFFERS", None: ""}[m.verified]
        lines.append(
            f"| {m.scenario} | {m.tool} | {m.phase} | {m.items} | {m.items / m.seconds:.1f} | "
            f"{m.seconds:.2f} | {m.rss_mb:.1f} | {m.arrived} | {verify} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="1,000 events and 500 contacts")
    add("--events", type=int, help="events (default 10,000; 1,000 with --quick)")
    add("--contacts", type=int, help="contacts (default 5,000; 500 with --quick)")
    add("--items-scale", type=float, default=1.0, help="multiply the default sizes")
    add("--recurring", type=int, help="recurring series among the events (default: one in ten)")
    add("--calendars", type=int, default=5, help="calendars the events are spread over")
    add("--address-books", type=int, default=2, help="address books the contacts are spread over")
    add("--seed", type=int, default=2024)
    add("--tools", default=",".join(TOOLS), help="comma-separated subset of vdirsyncer,mailferry")
    add("--reverse", action="store_true", help="also copy Xandikos -> Radicale (seeded by PUT)")
    add("--put-threads", type=int, default=4, help="PUTs in flight while seeding Xandikos")
    add(
        "--rss-items",
        type=int,
        default=0,
        help="add the memory scenario: mailferry on N small events",
    )
    add("--rss-collections", type=int, help="calendars of the memory scenario (default: N / 1,000)")
    add("--no-copy", action="store_true", help="skip the copy scenarios (e.g. memory only)")
    add("--mailferry-arg", action="append", default=[], help="extra argument for mailferry sync")
    add("--output", type=Path, default=HERE / "results" / "dav-latest.json")
    add("--workdir", type=Path, help="where the servers live (default: a temporary directory)")
    args = parser.parse_args()
    events = args.events or round((1000 if args.quick else 10_000) * args.items_scale)
    contacts = (
        args.contacts
        if args.contacts is not None
        else round((500 if args.quick else 5000) * args.items_scale)
    )
    recurring = args.recurring if args.recurring is not None else events // 10
    args.corpus = davcorpus.DavCorpus(
        events, recurring, contacts, args.calendars, args.address_books, args.seed
    )
    args.tools = [t for t in args.tools.split(",") if t]
    if set(args.tools) - set(TOOLS):
        parser.error(f"unknown tools: {sorted(set(args.tools) - set(TOOLS))}")
    args.rss_collections = args.rss_collections or max(1, args.rss_items // 1000)
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: servers stop, files go
    started = time.time()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="mailferry-davbench-"))
        )
        bench = Bench(args, workdir)
        radicale = stack.enter_context(RadicaleServer(workdir / "radicale"))
        xandikos = stack.enter_context(XandikosServer(workdir / "xandikos"))
        if not args.no_copy:
            bench.scenario(radicale, xandikos)
            if args.reverse:
                bench.scenario(xandikos, radicale)
        if args.rss_items:
            bench.memory(radicale, xandikos)
    print(table(bench.measures))
    corpus = args.corpus
    report = {
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "args": {
            k: (str(v) if isinstance(v, Path | davcorpus.DavCorpus) else v)
            for k, v in vars(args).items()
        },
        "corpus": asdict(corpus),
        "seeding": bench.seeding,
        "measures": [asdict(m) for m in bench.measures],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    return 0 if all(m.ok and m.verified is not False for m in bench.measures) else 1


if __name__ == "__main__":
    sys.exit(main())
