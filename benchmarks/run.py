#!/usr/bin/env python3
"""mailferry's benchmark: one command, local Dovecot servers, see benchmarks/README.md.

    python3 benchmarks/run.py [--quick] [--runs N] [--big-message-mb 100]

Generates the corpus into a source Dovecot once, then for each scenario and run migrates it into
a fresh target user (full pass, then an incremental pass), checks the copy with
``mailferry verify`` and measures the references (``doveadm backup`` over imapc, a naive
one-at-a-time copy). Prints a Markdown table and writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
try:
    import mailferry  # noqa: F401
except ImportError:  # run with a Python that lacks the package: use the repository's venv
    venv = REPO / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.executable) != venv:
        os.execv(venv, [str(venv), *sys.argv])  # noqa: S606 - the same script, another Python
    raise

# After the interpreter check above, on purpose.
import corpus  # noqa: E402
import references  # noqa: E402

from mailferry.sandbox.dovecot import DovecotServer  # noqa: E402
from mailferry.sandbox.proxy import Proxy  # noqa: E402

EXCHANGE_CAPABILITY = "IMAP4rev1 UIDPLUS LITERAL+ IDLE NAMESPACE ID UNSELECT CHILDREN MOVE"
PROCESS_TIMEOUT = 3600.0
SCENARIOS = ("loopback", "wan", "exchange")
DEFAULT_LATENCY = 0.010  # seconds each way: the ``wan`` and ``exchange`` scenarios


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Measure:
    scenario: str
    tool: str  # mailferry | doveadm | naive
    phase: str  # full | incremental
    run: int
    seconds: float  # wall clock, process start to exit (naive: in-process, extrapolated if sampled)
    messages: int
    bytes: int
    rss_mb: float | None = None
    internal_seconds: float | None = None  # mailferry's own "seconds" from --json
    sampled: int | None = None  # naive copy run on this many messages, then extrapolated
    verified: bool | None = None
    ok: bool = True
    note: str = ""


@dataclass
class Process:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    rss_mb: float
    cpu_seconds: float = 0.0  # user + system time of the process (0 where not measured)
    tree_rss_mb: float = 0.0  # peak of the summed RSS of it and its descendants (sampled)


# Runs the command as its own child and reports that child's wall time and peak RSS. Linux
# carries a process's pre-exec RSS into ru_maxrss (and vfork shares the parent's memory map), so
# a child spawned straight from this big harness would report the harness's peak; spawned from
# this small launcher, its figure is its own.
# It also samples, every 50 ms, the summed RSS of the child and all its descendants (worker
# processes: a PST copy's ``pstassemble``), whose peaks ru_maxrss does not add up.
LAUNCHER = """
import json, os, subprocess, sys, threading, time
def tree_kb(root):
    parents, rss = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(pid)] = int(fields[1])
        rss[int(pid)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
    total = 0
    for pid in rss:
        up = pid
        while up > 1 and up != root:
            up = parents.get(up, 0)
        total += rss[pid] if up == root else 0
    return total
peak, done = [0], threading.Event()
def sample(root):
    while not done.wait(0.05):
        peak[0] = max(peak[0], tree_kb(root))
start = time.monotonic()
proc = subprocess.Popen(sys.argv[2:])
threading.Thread(target=sample, args=(proc.pid,), daemon=True).start()
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.monotonic() - start
done.set()
with open(sys.argv[1], "w") as out:
    json.dump(
        {"seconds": seconds, "rss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
         "tree_rss_kb": max(peak[0], usage.ru_maxrss)}, out
    )
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(argv: list[str], env: dict[str, str] | None = None) -> Process:
    """Run to completion: exit code, output, wall time and peak RSS of that one process."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage.json"
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            launcher = [sys.executable, "-c", LAUNCHER, str(report), *argv]
            try:
                proc = subprocess.run(
                    launcher,
                    stdout=stdout,
                    stderr=stderr,
                    env=env,
                    timeout=PROCESS_TIMEOUT,
                    check=False,
                )
                returncode = proc.returncode
            except subprocess.TimeoutExpired:
                returncode = -9
        usage = (
            json.loads(report.read_text())
            if report.exists()
            else {"seconds": PROCESS_TIMEOUT, "rss_kb": 0}
        )
        return Process(
            returncode,
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            usage["seconds"],
            usage["rss_kb"] / 1024,
            usage.get("cpu", 0.0),
            usage.get("tree_rss_kb", 0) / 1024,
        )


def summary_of(stdout: str) -> dict[str, object]:
    """The JSON summary mailferry prints at the end (indented, after any other output)."""
    start = stdout.find("{")
    try:
        value, _ = json.JSONDecoder().raw_decode(stdout, max(start, 0))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def startup_seconds() -> float:
    """How long ``python -m mailferry.cli --version`` takes: the floor under every pass."""
    times = [
        run_process([sys.executable, "-m", "mailferry.cli", "--version"]).seconds for _ in range(3)
    ]
    return round(statistics.median(times), 3)


@dataclass
class Account:
    user: str
    password: str
    port: int  # where clients connect (the server, or a proxy in front of it)

    @property
    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.port}"


@dataclass
class Scenario:
    name: str
    source_port: int
    target: DovecotServer
    target_port: int
    reference: str  # doveadm | naive
    latency: float = 0.0  # seconds each way through the proxies


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    source: Account = field(init=False)
    corpus: corpus.Corpus = field(init=False)
    measures: list[Measure] = field(default_factory=list)
    users: int = 0
    big_source: Account | None = None
    big_messages: int = 0
    big_bytes: int = 0
    exchange: DovecotServer | None = None  # the Exchange-like target, shared by every latency

    def fresh_user(self, server: DovecotServer, stem: str) -> Account:
        self.users += 1
        user = f"{stem}{self.users}"
        server.add_user(user, f"pw-{user}")
        return Account(user, f"pw-{user}", server.port)

    def drop_user(self, server: DovecotServer, account: Account) -> None:
        """Free the disk: a full corpus per copy adds up over many runs."""
        shutil.rmtree(server.data_dir / "home" / account.user, ignore_errors=True)

    # -- mailferry ---------------------------------------------------------------------------

    def mailferry(self, command: str, source: Account, target: Account, state: Path) -> Process:
        argv = [sys.executable, "-m", "mailferry.cli", command, source.url, target.url]
        argv += ["--state", str(state), "--json"]
        if command == "sync":
            argv += self.args.mailferry_arg
        env = {
            **os.environ,
            "MAILFERRY_SOURCE_PASSWORD": source.password,
            "MAILFERRY_TARGET_PASSWORD": target.password,
        }
        return run_process(argv, env)

    def mailferry_run(self, scenario: Scenario, run: int) -> None:
        target = self.fresh_user(scenario.target, "mf")
        target.port = scenario.target_port
        source = Account(self.source.user, self.source.password, scenario.source_port)
        state = self.workdir / f"state-{scenario.name}-{run}.sqlite3"
        for phase in ("full", "incremental"):
            proc = self.mailferry("sync", source, target, state)
            measure = self._sync_measure(scenario.name, phase, run, proc)
            self.measures.append(measure)
            log(
                f"{scenario.name} mailferry {phase} run {run}: {measure.seconds:.2f} s, {measure.rss_mb:.0f} MB RSS{' FAILED ' + measure.note if not measure.ok else ''}"
            )
        check = self.mailferry("verify", source, target, state)
        verified = check.returncode == 0
        if not verified:
            log(
                f"{scenario.name} verify FAILED ({check.returncode}): {(check.stdout + check.stderr)[-1500:]}"
            )
        for measure in self.measures[-2:]:
            measure.verified = verified
        self.drop_user(scenario.target, target)

    def _sync_measure(self, scenario: str, phase: str, run: int, proc: Process) -> Measure:
        measure = Measure(scenario, "mailferry", phase, run, proc.seconds, 0, 0, proc.rss_mb)
        summary = summary_of(proc.stdout)
        measure.internal_seconds = summary.get("seconds")
        copied = summary.get("messages_copied", 0)
        if phase == "full":
            measure.messages, measure.bytes = copied, summary.get("bytes_copied", 0)
            expected = len(self.corpus.messages)
            if copied != expected:
                measure.ok, measure.note = False, f"copied {copied} of {expected}"
        else:  # what an incremental pass examines: the whole mailbox
            measure.messages, measure.bytes = len(self.corpus.messages), 0
            if copied:
                measure.ok, measure.note = False, f"incremental pass copied {copied}"
        if proc.returncode != 0:
            measure.ok = False
            measure.note = f"exit {proc.returncode}: {proc.stderr.strip()[-300:]} {measure.note}"
        return measure

    # -- references ---------------------------------------------------------------------------

    def doveadm_run(self, scenario: Scenario, run: int) -> None:
        target = self.fresh_user(scenario.target, "dsync")
        argv = references.doveadm_backup_argv(
            scenario.target, target.user, self.source.port, self.source.user, self.source.password
        )
        for phase in ("full", "incremental"):
            proc = run_process(argv)
            measure = Measure(
                scenario.name,
                "doveadm",
                phase,
                run,
                proc.seconds,
                len(self.corpus.messages),
                self.corpus.total_bytes if phase == "full" else 0,
                proc.rss_mb,
            )
            if proc.returncode != 0:
                measure.ok, measure.note = (
                    False,
                    f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                )
            self.measures.append(measure)
            log(f"{scenario.name} doveadm backup {phase} run {run}: {proc.seconds:.2f} s")
        state = self.workdir / f"state-dsync-{run}.sqlite3"
        check = self.mailferry("verify", self.source, target, state)
        for measure in self.measures[-2:]:
            measure.verified = check.returncode == 0
        if check.returncode != 0:
            log(
                f"doveadm copy differs per mailferry verify: {(check.stdout + check.stderr)[-800:]}"
            )
        self.drop_user(scenario.target, target)

    def naive_run(self, scenario: Scenario, run: int) -> None:
        target = self.fresh_user(scenario.target, "naive")
        # Sampled over a WAN, fewer the longer the round trip (300 at 20 ms, 60 at 100 ms).
        limit = None
        if scenario.latency:
            limit = max(30, round(self.args.naive_subset * min(1.0, 0.010 / scenario.latency)))
        result = references.naive_copy(
            (scenario.source_port, self.source.user, self.source.password),
            (scenario.target_port, target.user, target.password),
            limit=limit,
        )
        measure = Measure(
            scenario.name,
            "naive",
            "full",
            run,
            result.extrapolated(),
            result.total_messages,
            int(result.bytes * result.total_messages / result.messages),
            sampled=result.messages if limit is not None else None,
        )
        self.measures.append(measure)
        log(
            f"{scenario.name} naive copy run {run}: {result.messages} messages in {result.seconds:.2f} s (setup {result.setup_seconds:.2f} s)"
        )
        self.drop_user(scenario.target, target)

    # -- memory -------------------------------------------------------------------------------

    def memory_run(self, target_server: DovecotServer, run: int) -> None:
        source = self.big_source
        assert source is not None
        target = self.fresh_user(target_server, "big")
        state = self.workdir / f"state-memory-{run}.sqlite3"
        for phase in ("full", "incremental"):
            proc = self.mailferry("sync", source, target, state)
            measure = Measure(
                "memory",
                "mailferry",
                phase,
                run,
                proc.seconds,
                self.big_messages,
                self.big_bytes if phase == "full" else 0,
                proc.rss_mb,
            )
            if proc.returncode != 0:
                measure.ok, measure.note = (
                    False,
                    f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                )
            self.measures.append(measure)
            log(
                f"memory ({self.args.big_message_mb} MB message) {phase} run {run}: {proc.seconds:.2f} s, peak RSS {proc.rss_mb:.0f} MB"
            )
        check = self.mailferry("verify", source, target, state)
        for measure in self.measures[-2:]:
            measure.verified = check.returncode == 0
        self.drop_user(target_server, target)


# -- summary ----------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def scenario_latency(scenario: str, latencies: list[float]) -> float | None:
    """The one-way latency a scenario ran with (``wan``, ``wan-100ms``: see ``wan_name``); None
    for one that ran without proxies (loopback)."""
    for latency in latencies:
        if scenario in {wan_name(kind, latency) for kind in ("wan", "exchange")}:
            return latency
    return None


def wan_name(kind: str, latency: float) -> str:
    """``wan`` and ``exchange`` at 10 ms each way (the historical names), else named by their
    round trip: ``wan-100ms``, ``exchange-100ms``, ``exchange-0ms`` (the proxies, no delay)."""
    return kind if latency == DEFAULT_LATENCY else f"{kind}-{round(latency * 2000)}ms"


def summarise(measures: list[Measure], latencies: list[float]) -> list[dict[str, object]]:
    groups: dict[tuple[str, str, str], list[Measure]] = {}
    for m in measures:
        groups.setdefault((m.scenario, m.tool, m.phase), []).append(m)
    rows: list[dict[str, object]] = []
    for (scenario, tool, phase), items in groups.items():
        seconds = _median([m.seconds for m in items])
        rss = [m.rss_mb for m in items if m.rss_mb is not None]
        internal = [m.internal_seconds for m in items if m.internal_seconds is not None]
        rows.append({
            "scenario": scenario, "tool": tool, "phase": phase, "runs": len(items),
            "seconds": round(seconds, 3),
            "internal_seconds": round(_median(internal), 3) if internal else None,
            "messages": items[0].messages,
            "msg_per_s": round(items[0].messages / seconds, 1),
            "mb_per_s": round(items[0].bytes / 1e6 / seconds, 1) if items[0].bytes else None,
            "peak_rss_mb": round(max(rss), 1) if rss else None,
            "sampled": items[0].sampled,
            "verified": all(m.verified for m in items) if items[0].verified is not None else None,
            "ok": all(m.ok for m in items),
            "notes": "; ".join(sorted({m.note for m in items if m.note})),
        })  # fmt: skip
    by_key = {(r["scenario"], r["tool"], r["phase"]): r for r in rows}
    for row in rows:
        if row["tool"] != "mailferry":
            continue
        reference = "doveadm" if row["scenario"] == "loopback" else "naive"
        ref = by_key.get((row["scenario"], reference, row["phase"]))
        if ref is not None:
            row["reference"] = reference
            row["ratio"] = round(float(ref["seconds"]) / float(row["seconds"]), 2)
        latency = scenario_latency(str(row["scenario"]), latencies)
        loop = by_key.get(("loopback", "mailferry", row["phase"]))
        if latency and loop is not None:  # issue 17: >= 90 % of loopback at 20 ms, 70 % at 100 ms
            row["of_loopback"] = round(float(loop["seconds"]) / float(row["seconds"]), 2)
        base = by_key.get(("loopback", "mailferry", "incremental"))
        wan = bool(latency)
        latency = latency or 0.0
        if row["phase"] == "incremental" and wan and base and latency > 0:
            # Time the pass spent over loopback's, in round trips (mailferry's own timing,
            # without interpreter start-up; wall clock if it printed none).
            key = (
                "internal_seconds"
                if row["internal_seconds"] and base["internal_seconds"]
                else "seconds"
            )
            extra = float(row[key]) - float(base[key])  # type: ignore[arg-type]
            row["round_trips"] = round(extra / (2 * latency))
    return rows


def table(rows: list[dict[str, object]], folders: int) -> str:
    head = (
        "| scenario | tool | pass | msg/s | MB/s | seconds | peak RSS MB | ratio | verify | notes |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        notes = []
        if r.get("sampled"):
            notes.append(f"sampled {r['sampled']} msgs, extrapolated")
        if r.get("round_trips") is not None:
            notes.append(
                f"~{r['round_trips']} round trips (~{int(r['round_trips']) / folders:.1f}/folder) over loopback's time"
            )
        if r.get("of_loopback") is not None:
            notes.append(f"**{r['of_loopback']:.0%} of loopback**")
        if r.get("internal_seconds") is not None:
            notes.append(f"mailferry's own {r['internal_seconds']} s")
        if not r["ok"]:
            notes.append("FAILED: " + str(r["notes"]))
        ratio = f"{r['ratio']}x {r['reference']}" if r.get("ratio") is not None else ""
        verify = {True: "ok", False: "DIFFERS", None: ""}[r["verified"]]  # type: ignore[index]
        mbs = r["mb_per_s"] if r["mb_per_s"] is not None else ""
        rss = r["peak_rss_mb"] if r["peak_rss_mb"] is not None else ""
        lines.append(
            f"| {r['scenario']} | {r['tool']} | {r['phase']} | {r['msg_per_s']} | {mbs} | {r['seconds']} | {rss} | {ratio} | {verify} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


# -- orchestration ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 messages (~45 MB), 1 run")
    parser.add_argument(
        "--runs", type=int, help="runs per scenario, median reported (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--messages", type=int, help="corpus size (default 5000; 1000 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of loopback,wan,exchange (or 'none')",
    )
    parser.add_argument(
        "--latency",
        default="0.010,0.050",
        help="seconds added each way by the WAN proxies, comma-separated: wan and exchange run "
        "at each (default 0.010,0.050: 20 and 100 ms round trips)",
    )
    parser.add_argument(
        "--naive-subset", type=int, default=300, help="messages the naive copy moves over WAN"
    )
    parser.add_argument(
        "--big-message-mb",
        type=int,
        default=0,
        help="add the memory scenario: one message this big",
    )
    parser.add_argument(
        "--mailferry-arg",
        action="append",
        default=[],
        help="extra argument for mailferry sync, e.g. --mailferry-arg=--connections=4",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument(
        "--workdir", type=Path, help="where the servers live (default: a temporary directory)"
    )
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.messages = args.messages or (1000 if args.quick else 5000)
    args.scenarios = [] if args.scenarios == "none" else args.scenarios.split(",")
    args.latency = [float(value) for value in args.latency.split(",")]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {sorted(unknown)}")
    return args


def machine() -> dict[str, object]:
    def out(argv: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            return subprocess.run(
                argv, capture_output=True, text=True, check=True, cwd=REPO
            ).stdout.strip()
        return ""

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "dovecot": out(["dovecot", "--version"]),
        "kernel": platform.release(),
        "mailferry_startup_seconds": startup_seconds(),
        "git": out(["git", "rev-parse", "--short", "HEAD"])
        + (" (dirty)" if out(["git", "status", "--porcelain"]) else ""),
    }


def load_source(bench: Bench, source: DovecotServer) -> None:
    bench.corpus = corpus.plan_corpus(bench.args.messages, bench.args.seed, quick=bench.args.quick)
    bench.source = bench.fresh_user(source, "source")
    if not bench.args.scenarios:
        return
    start = time.monotonic()
    bench.corpus.total_bytes = corpus.load(
        source.host, source.port, bench.source.user, bench.source.password, bench.corpus
    )
    took = time.monotonic() - start
    log(
        f"corpus: {len(bench.corpus.messages)} messages, {bench.corpus.total_bytes / 1e6:.1f} MB in {len(bench.corpus.folders)} folders, loaded in {took:.1f} s"
    )


def load_big(bench: Bench, source: DovecotServer) -> None:
    size = bench.args.big_message_mb * 1024 * 1024
    when = dt.datetime(2024, 2, 29, 12, 0, tzinfo=dt.UTC)
    specs = [
        corpus.MessageSpec(
            "INBOX", size, attachment=True, flags=("\\Seen",), internaldate=when, seed=99
        )
    ]
    specs += bench.corpus.messages[:20] if bench.args.scenarios else corpus.plan_corpus(20).messages
    account = bench.fresh_user(source, "bigsource")
    small = corpus.Corpus(0, specs, folders=sorted({s.folder for s in specs}))
    bench.big_bytes = corpus.load(source.host, source.port, account.user, account.password, small)
    bench.big_messages = len(specs)
    bench.big_source = account
    log(f"memory corpus: one {size / 1e6:.0f} MB message and {len(specs) - 1} small ones")


def wan_scenarios(
    stack: contextlib.ExitStack,
    bench: Bench,
    servers: tuple[DovecotServer, DovecotServer],
    latency: float,
) -> list[Scenario]:
    """``wan`` and ``exchange`` (as asked) through proxies adding ``latency`` each way."""
    args, (source, target) = bench.args, servers
    found = []
    wan_source = stack.enter_context(Proxy(source.host, source.port, latency=latency))
    if "wan" in args.scenarios:
        wan_target = stack.enter_context(Proxy(target.host, target.port, latency=latency))
        name = wan_name("wan", latency)
        found.append(Scenario(name, wan_source.port, target, wan_target.port, "naive", latency))
    if "exchange" in args.scenarios:
        exchange = bench.exchange
        if exchange is None:
            exchange = bench.exchange = stack.enter_context(
                DovecotServer(bench.workdir / "exchange", capability=EXCHANGE_CAPABILITY)
            )
        wan_exchange = stack.enter_context(Proxy(exchange.host, exchange.port, latency=latency))
        name = wan_name("exchange", latency)
        found.append(Scenario(name, wan_source.port, exchange, wan_exchange.port, "naive", latency))
    return found


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so the servers stop and their files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="mailferry-bench-"))
        )
        bench = Bench(args, workdir)
        source = stack.enter_context(DovecotServer(workdir / "source"))
        target = stack.enter_context(DovecotServer(workdir / "target"))
        load_source(bench, source)
        scenarios = []
        if "loopback" in args.scenarios:
            scenarios.append(Scenario("loopback", source.port, target, target.port, "doveadm"))
        for latency in args.latency if {"wan", "exchange"} & set(args.scenarios) else []:
            scenarios += wan_scenarios(stack, bench, (source, target), latency)
        for run in range(1, args.runs + 1):
            for scenario in scenarios:
                bench.mailferry_run(scenario, run)
                if scenario.reference == "doveadm":
                    bench.doveadm_run(scenario, run)
                bench.naive_run(scenario, run)
        if args.big_message_mb:
            load_big(bench, source)
            for run in range(1, args.runs + 1):
                bench.memory_run(target, run)
        rows = summarise(bench.measures, args.latency)
    print(table(rows, len(bench.corpus.folders)))
    report = {
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "corpus": {
            "messages": len(bench.corpus.messages), "bytes": bench.corpus.total_bytes,
            "folders": len(bench.corpus.folders), "seed": bench.corpus.seed,
        },
        "table": rows,
        "measures": [asdict(m) for m in bench.measures],
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {args.output}")
    return 0 if all(r["ok"] and r["verified"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
