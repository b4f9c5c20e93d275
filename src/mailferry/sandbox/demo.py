"""A real demo migration: two throwaway local Dovecot servers, generated mail, sync, verify, re-sync.

    python3 -m mailferry.sandbox.demo [--keep DIR]

Starts a "/"-delimited source and a "."-delimited target on 127.0.0.1, fills the source with the test
corpus (nested and non-ASCII folders, special-use folders under other names, every flag, duplicates,
malformed MIME, a 30 MB message), then runs the real ``mailferry`` command three times: sync, verify,
and a second sync that must copy nothing. Exits non-zero if any step does not do what it should.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.sandbox.dovecot import DovecotServer

SOURCE_SPECIAL_USE = {"Sent Messages": "\\Sent", "Deleted Messages": "\\Trash"}


def _mailferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailferry.cli", *args]
    print("$ mailferry " + " ".join(args), flush=True)  # noqa: T201 - the demo talks to its user
    return subprocess.run(command, env=env, text=True, capture_output=True, check=False)


def _show(result: subprocess.CompletedProcess[str]) -> None:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)


def run_demo(root: Path) -> int:
    with (
        DovecotServer(
            root / "old", delimiter="/", special_use=SOURCE_SPECIAL_USE, auto_create=False
        ) as old,
        DovecotServer(root / "new", delimiter=".") as new,
    ):
        old.add_user("alice@old.example", "source-secret")
        new.add_user("alice@new.example", "target-secret")
        corpus = build_corpus(1, big_message_mb=30)
        client = connect(old, "alice@old.example", "source-secret")
        report = load_corpus(client, corpus, "/")
        client.logout()
        print(  # noqa: T201
            f"source filled: {report.appended} messages, {len(corpus.folders)} folders, "
            f"{corpus.total_bytes / 1e6:.1f} MB"
        )
        env = {
            **os.environ,
            "MAILFERRY_SOURCE_PASSWORD": "source-secret",
            "MAILFERRY_TARGET_PASSWORD": "target-secret",
        }
        source = f"imap://alice@old.example@127.0.0.1:{old.port}"
        target = f"imap://alice@new.example@127.0.0.1:{new.port}"
        state = str(root / "state.sqlite3")
        first = _mailferry("sync", source, target, "--state", state, env=env)
        _show(first)
        check = _mailferry("verify", source, target, "--state", state, env=env)
        _show(check)
        again = _mailferry("sync", source, target, "--state", state, "--json", env=env)
        _show(again)
        copied_again = json.loads(again.stdout)["messages_copied"] if again.returncode == 0 else -1
        ok = first.returncode == 0 and check.returncode == 0 and copied_again == 0
        print("demo: OK" if ok else "demo: FAILED")  # noqa: T201
        return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", type=Path, help="keep the servers' files in this directory")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        sys.exit(run_demo(args.keep))
    with tempfile.TemporaryDirectory(prefix="mailferry-demo-") as tmp:
        sys.exit(run_demo(Path(tmp)))


if __name__ == "__main__":
    main()
