#!/usr/bin/env python3
"""Big batches (issue #17 rule 4): 10,000 mailboxes, each answer timed.

    python3 benchmarks/batches.py [--mailboxes 10000] [--runs 5]

In one process, on a throw-away SQLite state database (no servers: the endpoints point nowhere):
- the CSV validated: a clean file, and one where every tenth row has a problem (all reported);
- ``create_batch`` (validation, two passwords encrypted per row, one insert);
- the batch page (HTML, logged in), the API's batch detail, ``mailferry batch status`` (CLI, in
  process), each for the first page, a state filter, an error filter and an address search;
- the reports (CSV, JSON) written to a file, with the peak of memory allocated (tracemalloc);
- the scheduler's own cost per mailbox: a second batch of as many mailboxes run to the end by the
  real ``Scheduler`` (claims, connection caps, heartbeats, outcomes recorded in the database) on
  the in-memory IMAP fakes of the unit tests, empty mailboxes, so nearly all the time is the
  scheduler's and the state database's.
``--database postgres`` does the same on a throw-away PostgreSQL cluster (Debian ``postgresql``,
the tests' sandbox) instead of SQLite.
Half the mailboxes are given a finished pass (copied, some failures) so that filters select.
Each figure is the minimum of ``--runs`` (the machine is shared). Not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
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

from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import update  # noqa: E402

from mailferry.adapters.memory.state import MemoryStateStore  # noqa: E402
from mailferry.adapters.store.tables import MAILBOXES  # noqa: E402
from mailferry.bootstrap import open_service, upgrade_database  # noqa: E402
from mailferry.cli.app import main as cli  # noqa: E402
from mailferry.domain.errors import ConfigError  # noqa: E402
from mailferry.service.batches import BatchOptions, EndpointSpec  # noqa: E402
from mailferry.service.batchpages import MailboxQuery  # noqa: E402
from mailferry.service.csvimport import parse_batch_csv  # noqa: E402
from mailferry.service.scheduler import Scheduler  # noqa: E402
from mailferry.web import WebSettings, create_app  # noqa: E402
from mailferry.web.credentials import AuthStore  # noqa: E402
from mailferry.web.passwords import ScryptCost  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.fakes import MemoryConnector  # noqa: E402

PASSWORD = "benchmark admin password"  # noqa: S105 - a throw-away database's admin
BASE = "http://127.0.0.1:8080"


def csv_of(count: int, *, broken_every: int = 0) -> bytes:
    lines = ["EmailAddress,UserName,Password,TargetPassword"]
    for i in range(count):
        email = f"user{i:05d}@new.example"
        if broken_every and i % broken_every == 1:
            email = f"user{i:05d} at new.example"  # not an address
        lines.append(f"{email},user{i:05d},pw-{i},tpw-{i}")
    return ("\n".join(lines) + "\n").encode()


def best(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(min(times), 4)


def finish_half(service: object, name: str) -> None:
    """Every other mailbox synced (some with failures), as after a first pass."""
    db = service.store.db  # type: ignore[attr-defined]
    with db.transaction(write=True) as conn:
        m = MAILBOXES.c
        synced = m.line % 2 == 0
        conn.execute(
            update(MAILBOXES)
            .where(m.batch == name, synced)
            .values(state="synced", copied=1000, bytes=5_000_000, folders=20, seconds=30.0)
        )
        conn.execute(
            update(MAILBOXES)
            .where(m.batch == name, m.line % 20 == 0)
            .values(state="failed", errors=3, reason="login refused")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--scheduler-workers", type=int, default=32, help="jobs at once")
    args = parser.parse_args()
    n, runs = args.mailboxes, args.runs
    rows: dict[str, object] = {"mailboxes": n}
    clean, broken = csv_of(n), csv_of(n, broken_every=10)
    rows["csv_valid_s"] = best(runs, lambda: parse_batch_csv(clean))

    def parse_broken() -> None:
        try:
            parse_batch_csv(broken)
        except ConfigError as exc:
            rows["csv_problems_reported"] = len(exc.problems)

    rows["csv_broken_s"] = best(runs, parse_broken)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        os.environ.pop("MAILFERRY_KEY", None)
        state = Path(tmp) / "state.sqlite3"
        database = None
        if args.database == "postgres":
            database = postgres_database(stack, Path(tmp))
            upgrade_database(state, database)
            os.environ["MAILFERRY_DATABASE"] = database
        rows["database"] = args.database
        service = open_service(state, database)
        for ep in ("old", "new"):
            service.add_endpoint(EndpointSpec(ep, "127.0.0.1", 1, allow_plaintext=True))
        started = time.perf_counter()
        service.create_batch("big", "old", "new", clean, BatchOptions())
        rows["create_batch_s"] = round(time.perf_counter() - started, 3)
        finish_half(service, "big")
        rows.update(answers(service, state, runs))
        rows.update(reports(state, Path(tmp), runs))
        rows.update(scheduler_cost(service, n, args.scheduler_workers))
        service.close()
    for key, value in rows.items():
        print(f"{key:32} {value}")
    out = HERE / "results" / "batches-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return 0


QUERIES = {
    "first page": "",
    "state=failed": "state=failed",
    "errors=yes": "errors=yes",
    "search": "q=user0999",
}


def answers(service: object, state: Path, runs: int) -> dict[str, object]:
    auth = AuthStore.of_service(service, cost=ScryptCost(n=2**10))  # type: ignore[arg-type]
    auth.set_admin_password(PASSWORD)
    token = auth.create_token("bench")
    settings = WebSettings(password_cost=ScryptCost(n=2**10))
    found: dict[str, object] = {}
    with TestClient(create_app(service, settings), base_url=BASE) as browser:  # type: ignore[arg-type]
        browser.post("/login", data={"password": PASSWORD, "next": "/"})
        for label, query in QUERIES.items():
            url = f"/batches/big?{query}"
            found[f"page {label} s"] = best(runs, lambda u=url: ok(browser.get(u)))
            found[f"page {label} KB"] = len(browser.get(url).content) // 1024
        api = {"Authorization": f"Bearer {token}"}
        for label, query in QUERIES.items():
            url = f"/api/batches/big?{query}"
            found[f"api {label} s"] = best(runs, lambda u=url: ok(browser.get(u, headers=api)))
    env = {"MAILFERRY_STATE": str(state)}
    argv = ["batch", "status", "big", "--state", str(state)]
    cli_queries = {"first page": [], "state=failed": ["--only", "failed"]}
    cli_queries |= {"errors=yes": ["--errors"], "search": ["--search", "user0999"]}
    for label, extra in cli_queries.items():
        result = CliRunner().invoke(cli, argv + extra, env=env, catch_exceptions=False)
        if result.exit_code != 0:
            found[f"cli {label} s"] = f"exit {result.exit_code}"
            continue
        found[f"cli {label} s"] = best(
            runs, lambda e=extra: CliRunner().invoke(cli, argv + e, env=env, catch_exceptions=False)
        )
        found[f"cli {label} lines"] = result.output.count("\n")
    return found


def postgres_database(stack: contextlib.ExitStack, tmp: Path) -> str:
    """A throw-away PostgreSQL cluster (the tests' sandbox: initdb, no fsync), its database URL."""
    from mailferry.sandbox.postgres import PostgresServer  # noqa: PLC0415 - only this option

    pg_root = tmp / "pg"
    pg_root.mkdir()
    server = stack.enter_context(PostgresServer(pg_root))
    return server.url()


def scheduler_cost(service: object, count: int, workers: int) -> dict[str, object]:
    """A batch of ``count`` empty mailboxes on the memory fakes, run to the end by the real
    scheduler: wall time per mailbox and the mailboxes it finished."""
    csv = csv_of(count).replace(b"@new.example", b"@sched.example")
    service.create_batch("sched", "old", "new", csv, BatchOptions())  # type: ignore[attr-defined]
    service.start("sched")  # type: ignore[attr-defined]
    scheduler = Scheduler(
        service,  # type: ignore[arg-type]
        MemoryConnector(),  # type: ignore[arg-type]
        MemoryStateStore,
        batch="sched",
        poll=0.01,
        workers=workers,
    )
    started = time.perf_counter()
    scheduler.run(threading.Event(), until_idle=True)
    seconds = time.perf_counter() - started
    counts = service.status_page("sched", MailboxQuery()).counts()  # type: ignore[attr-defined]
    return {
        "scheduler s": round(seconds, 2),
        "scheduler ms per mailbox": round(seconds / count * 1000, 2),
        "scheduler states": counts,
    }


def ok(response: object) -> object:
    if response.status_code != 200:  # type: ignore[attr-defined]
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")  # type: ignore[attr-defined]
    return response


def reports(state: Path, tmp: Path, runs: int) -> dict[str, object]:
    """Each report written to a file by the CLI: the time (no tracing), then the peak of
    memory allocated while writing it (tracemalloc, which slows it down)."""
    found: dict[str, object] = {}
    for label, extra in (("csv", []), ("json", ["--json"])):
        out = tmp / f"report.{label}"
        argv = ["batch", "report", "big", "--state", str(state), "-o", str(out), *extra]
        found[f"report {label} s"] = best(
            runs, lambda a=argv: CliRunner().invoke(cli, a, catch_exceptions=False)
        )
        tracemalloc.start()
        CliRunner().invoke(cli, argv, catch_exceptions=False)
        found[f"report {label} peak MB"] = round(tracemalloc.get_traced_memory()[1] / 1e6, 1)
        tracemalloc.stop()
        found[f"report {label} MB"] = round(out.stat().st_size / 1e6, 2)
    return found


if __name__ == "__main__":
    sys.exit(main())
