"""What the ``mailferry`` command loads before it knows what it will do: every run pays for it
(about half of a no-op pass's wall time on this machine, issue #17 rule 2), so the machinery of a
protocol or a file format is imported only when a side needs it."""

from __future__ import annotations

import json
import subprocess
import sys

from mailferry import __version__

# Imported only where a side or a command needs them (``bootstrap``, ``cli/graph.py``, ...).
NOT_AT_START = (
    "mailferry.adapters.files",  # maildir://, mbox://, eml://, pst:// sides
    "mailferry.adapters.graph",  # Microsoft 365 through Graph
    "mailferry.adapters.dav",  # CalDAV/CardDAV
    "mailferry.service.graphsync",
    "mailferry.service.davsync",
    "mailferry.web",
    "mailferry.domain.davports",  # calendars and contacts
    "mailferry.domain.davmodel",
    "mailferry.domain.items",
    "mailferry.domain.davreport",
    "mailferry.domain.mailboxports",  # Graph's mailbox model, plan and report
    "mailferry.service.davcontext",
    "mailferry.adapters.oauth.delegated",  # a delegated sign-in, and the key ring it is kept with
    "mailferry.adapters.oauth.google",
    "mailferry.adapters.secrets",
    "cryptography",
    "httpx",
    "msal",
    "icalendar",
    "vobject",
    "fastapi",
    "uvicorn",
    "psycopg",
    "procrastinate",
    "pypff",
    "rich",  # printed with for a person only (cli/console.py); hidden from structlog (logs.py)
    "pygments",
    "attr",
)


# Runs ``mailferry sync`` between two IMAP URLs that refuse the connection (so the run ends at
# its first login, after routing the request: Graph or not) and prints what it had imported.
RUN = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules))))
from mailferry.cli.app import main
main(sys.argv[1:])
"""


def early(loaded: list[str]) -> list[str]:
    return sorted(
        name for name in loaded for prefix in NOT_AT_START if f"{name}.".startswith(f"{prefix}.")
    )


def test_the_command_does_not_load_what_an_imap_run_does_not_use():
    code = "import json, sys; import mailferry.cli.app; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert "mailferry.cli.sync" in loaded  # the probe itself works
    assert early(loaded) == [], "imported by `import mailferry.cli.app`"


# The entry point as the console script calls it; prints what the collector was left with.
ENTRY = """
import gc, json, sys
from mailferry.cli import run
sys.argv = ["mailferry", "--version"]
try:
    run()
except SystemExit as exc:
    print(json.dumps([exc.code, gc.isenabled(), gc.get_freeze_count(), "mailferry.cli.app" in sys.modules]))
"""


def test_the_entry_point_imports_the_commands_then_freezes_them_and_collects_again():
    lines = subprocess.check_output([sys.executable, "-c", ENTRY], text=True).splitlines()
    assert lines[0] == f"mailferry, version {__version__}"
    code, enabled, frozen, imported = json.loads(lines[-1])
    assert (code, enabled, imported) == (0, True, True)  # the collector is on again for the run
    assert frozen > 10_000  # what the imports made is out of every later collection's walk


def test_the_package_itself_imports_nothing_heavy():
    code = "import json, sys; import mailferry.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    assert not [n for n in loaded if n.startswith(("mailferry.cli.", "click", "sqlalchemy"))]


def test_an_imap_to_imap_run_does_not_load_graph_or_files(tmp_path):
    argv = [sys.executable, "-c", RUN, "sync", "--allow-plaintext"]
    argv += ["--state", str(tmp_path / "state.sqlite3")]
    argv += ["imap://a@127.0.0.1:1", "imap://b@127.0.0.1:1"]  # port 1: refused at once
    env = {"MAILFERRY_SOURCE_PASSWORD": "x", "MAILFERRY_TARGET_PASSWORD": "x", "PATH": "/usr/bin"}
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 3  # a connection error (cli/exits.py)
    assert "cannot connect to 127.0.0.1:1" in done.stderr  # it got as far as the first login
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "mailferry.bootstrap.graph" in loaded  # the request was routed
    assert early(loaded) == [], "imported by a run between two IMAP servers"
