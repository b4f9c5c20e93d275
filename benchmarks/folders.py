#!/usr/bin/env python3
"""Many folders: a no-op pass over an account of 2,000 (or 5,000) folders, issue #17 rule 2.

    python3 benchmarks/folders.py [--folders 2000,5000] [--runs 3] [--latency 0.005] [--before DIR]

For each size: a source Dovecot (delimiter "/") gets a deep hierarchy of N folders, every one
subscribed, a small message in every tenth (written into its Maildir before the first login); mailferry
copies it into a fresh target user on a "." Dovecot (first pass), then runs no-op passes:
- on loopback, ``--runs`` times (the table gives the minimum and the median), through
  ``mailferry.sandbox.proxy.Proxy`` without latency (the state is kept per pair of URLs, ports
  included, so every pass goes through the same proxies), counting the commands each server
  completed in the first of them (tagged answers): what one pass costs each side in commands;
- through the same proxies with ``--latency`` each way: (time - loopback time) / round trip
  estimates the round trips the pass waited for;
- straight to the servers, ``--runs`` times, with a state of their own (its first pass is a
  lost-state pass: it matches what the proxied one copied). The proxies relay every byte
  through this script's Python threads, on the same cores as the servers and mailferry, so
  only these passes are what a loopback run costs ("direct" in the table);
- with ``--before OTHER/src``: ``--runs`` no-op passes of that checkout and of this one in turn,
  on the same servers and state (wall and CPU seconds of each process: the VM's speed changes
  by half from one minute to the next, so a before and after are compared run by run).
Wall time is the mailferry process's (its start-up included: 0.4-1.3 s on the 2-core VM, most of
it imports); "own" is the ``seconds`` it reports itself. Not a test: prints a Markdown table,
writes results/folders-latest.json.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
import run  # noqa: E402, F401 - re-runs this script under the repository's venv if needed
from run import Process, run_process, summary_of  # noqa: E402

from mailferry.sandbox.dovecot import MAIL_GROUP, MAIL_USER, DovecotServer  # noqa: E402
from mailferry.sandbox.proxy import Proxy  # noqa: E402

TAGGED = rb"^[A-Za-z0-9.]+ (OK|NO|BAD)\b"  # a completed command (untagged lines start with "*")
FANOUT = 8  # children per folder: 8 + 64 + 512 + ... folders, four to five levels deep


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def folder_names(count: int) -> list[str]:
    """``count`` folder names, breadth first, parents before children: ``F3/F3.5/F3.5.1``."""
    names: list[str] = []
    level = [""]
    while len(names) < count:
        nxt: list[str] = []
        for parent in level:
            for i in range(FANOUT):
                leaf = f"F{parent.rsplit('/', 1)[-1][1:]}.{i}" if parent else f"F{i}"
                name = f"{parent}/{leaf}" if parent else leaf
                nxt.append(name)
                names.append(name)
                if len(names) == count:
                    return names
        level = nxt
    return names


def fill_source(server: DovecotServer, user: str, count: int) -> None:
    """Every folder written straight into the user's Maildir (``LAYOUT=fs``: one directory per
    folder, children inside) with a subscriptions file, a message in every tenth, before the
    user's first login. CREATE over IMAP costs Dovecot O(n) per folder: 5,000 took many minutes."""
    maildir = server.data_dir / "home" / user / "Maildir"
    names = folder_names(count)
    for index, name in enumerate(["", *names]):
        folder = maildir / name if name else maildir
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        if index % 10 == 1:
            body = f"Subject: m{index}\r\nMessage-ID: <m{index}@folders.test>\r\n\r\nhi\r\n"
            stamp = 1_600_000_000 + index
            (folder / "cur" / f"{stamp}.M{index}P1.folders,S={len(body)}:2,S").write_text(body)
    (maildir / "subscriptions").write_text("".join(f"{n}\n" for n in ["INBOX", *names]))
    uid, gid = pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid
    for directory, dirs, files in os.walk(maildir.parent):
        os.chown(directory, uid, gid)
        for entry in dirs + files:
            os.chown(Path(directory) / entry, uid, gid)


def sync(
    server_src: int, server_dst: int, names: tuple[str, str], state: Path, env: dict[str, str]
) -> Process:
    src = f"imap://{names[0]}@127.0.0.1:{server_src}"
    dst = f"imap://{names[1]}@127.0.0.1:{server_dst}"
    argv = [
        sys.executable,
        "-m",
        "mailferry.cli",
        "sync",
        src,
        dst,
        "--state",
        str(state),
        "--json",
    ]
    proc = run_process(argv, env)
    if proc.returncode != 0:
        raise RuntimeError(f"mailferry exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def alternated(
    ports: tuple[int, int], state: Path, env: dict[str, str], trees: dict[str, Path], runs: int
) -> dict[str, object]:
    """No-op passes of each tree in turn on the same servers and state (``--before``): wall
    and CPU seconds of each process, min and median a tree."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for _ in range(runs):
        for name, src in trees.items():
            proc = sync(*ports, ("src", "dst"), state, env | {"PYTHONPATH": str(src)})
            times[name].append((proc.seconds, proc.cpu_seconds))
    out: dict[str, object] = {}
    for name, pairs in times.items():
        walls, cpus = [w for w, _ in pairs], [c for _, c in pairs]
        out[name] = {
            "wall_min_s": round(min(walls), 3),
            "wall_median_s": round(statistics.median(walls), 3),
            "cpu_min_s": round(min(cpus), 3),
            "cpu_median_s": round(statistics.median(cpus), 3),
        }
    return out


def straight(
    src: int, dst: int, names: tuple[str, str], state: Path, env: dict[str, str], runs: int
) -> dict[str, float]:
    """No-op passes straight to the servers, without the proxies (their own state: its first
    pass matches the target's folders and messages): what an administrator's loopback run
    costs, wall and CPU seconds of the whole process."""
    sync(src, dst, names, state, env)
    loop = [sync(src, dst, names, state, env) for _ in range(runs)]
    own = [float(summary_of(p.stdout)["seconds"]) for p in loop]  # type: ignore[arg-type]
    return {
        "direct_wall_min_s": round(min(p.seconds for p in loop), 3),
        "direct_wall_median_s": round(statistics.median(p.seconds for p in loop), 3),
        "direct_cpu_median_s": round(statistics.median(p.cpu_seconds for p in loop), 3),
        "direct_own_min_s": round(min(own), 3),
    }


def measure(
    count: int, runs: int, latency: float, work: Path, before: Path | None = None
) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix=f"folders{count}-", dir=work))
    with (
        DovecotServer(root / "src", delimiter="/", auto_create=False) as source,
        DovecotServer(root / "dst", delimiter=".") as target,
    ):
        su, sp = "src", "pw-src"
        tu, tp = "dst", "pw-dst"
        source.add_user(su, sp)
        target.add_user(tu, tp)
        started = time.monotonic()
        fill_source(source, su, count)
        log(f"{count} folders made in {time.monotonic() - started:.1f} s")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),  # this checkout's mailferry, whatever the venv holds
            "MAILFERRY_SOURCE_PASSWORD": sp,
            "MAILFERRY_TARGET_PASSWORD": tp,
        }
        state = root / "state.sqlite3"
        # Every pass goes through the same two proxies (the state is kept per pair of URLs, ports
        # included): without latency for the first pass and the loopback runs, then with it.
        with Proxy("127.0.0.1", source.port) as ps, Proxy("127.0.0.1", target.port) as pt:
            ports = (ps.port, pt.port)
            first = sync(*ports, (su, tu), state, env)
            done = summary_of(first.stdout)
            log(
                f"first pass {first.seconds:.2f} s: {done.get('folders')} folders, "
                f"{done.get('messages_copied')} messages"
            )
            if done.get("folders") != count + 1:  # and INBOX
                raise RuntimeError(f"the source has not {count} folders: {done}")
            ps.watch(TAGGED)
            pt.watch(TAGGED)
            counted = sync(*ports, (su, tu), state, env)
            commands = (len(ps.seen(TAGGED)), len(pt.seen(TAGGED)))
            loop = [counted] + [sync(*ports, (su, tu), state, env) for _ in range(runs - 1)]
            trees = {"before": before, "after": REPO / "src"} if before else {}
            ab = alternated(ports, state, env, trees, runs) if trees else None
            ps.latency = pt.latency = latency
            slow = sync(*ports, (su, tu), state, env)
        direct = straight(source.port, target.port, (su, tu), root / "direct.sqlite3", env, runs)
        version = [sys.executable, "-m", "mailferry.cli", "--version"]
        startup = min(run_process(version, env).seconds for _ in range(3))
    own = [float(summary_of(p.stdout)["seconds"]) for p in loop]  # type: ignore[arg-type]
    slow_own = float(summary_of(slow.stdout)["seconds"])  # type: ignore[arg-type]
    return {
        "folders": count,
        "first_pass_s": round(first.seconds, 3),
        "noop_wall_min_s": round(min(p.seconds for p in loop), 3),
        "noop_wall_median_s": round(statistics.median(p.seconds for p in loop), 3),
        "noop_own_min_s": round(min(own), 3),
        **direct,
        "startup_min_s": round(startup, 3),  # the interpreter and imports: the floor under a pass
        "noop_rss_mb": round(max(p.rss_mb for p in loop), 1),
        "commands_source": commands[0],
        "commands_target": commands[1],
        "latency_own_s": round(slow_own, 3),
        "round_trips": round((slow_own - min(own)) / (2 * latency)),
        **({"alternated": ab} if ab else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", default="2000,5000", help="comma-separated sizes")
    parser.add_argument(
        "--runs", type=int, default=3, help="no-op passes on loopback (min, median)"
    )
    parser.add_argument("--latency", type=float, default=0.005, help="seconds each way, proxy")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another checkout's src/: its no-op passes "
        "alternated with this one's on the same servers (wall and CPU seconds)",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mailferry-folders-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.folders.split(","):
        rows.append(measure(int(n), args.runs, args.latency, work, args.before))
        log(json.dumps(rows[-1]))
    print(
        "| folders | first pass s | no-op wall min s | median s | own min s | RSS MB "
        "| start-up s | commands src/dst | own s at RTT | round trips "
        "| direct wall min / median s | direct own min s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['folders']} | {r['first_pass_s']} | **{r['noop_wall_min_s']}** | "
            f"{r['noop_wall_median_s']} | {r['noop_own_min_s']} | {r['noop_rss_mb']} | "
            f"{r['startup_min_s']} | "
            f"{r['commands_source']}/{r['commands_target']} | {r['latency_own_s']} "
            f"({args.latency * 2000:.0f} ms) | ~{r['round_trips']} | "
            f"**{r['direct_wall_min_s']}** / {r['direct_wall_median_s']} | {r['direct_own_min_s']} |"
        )
    out = HERE / "results" / "folders-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"args": vars(args) | {"workdir": str(work), "before": str(args.before)}, "rows": rows},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
