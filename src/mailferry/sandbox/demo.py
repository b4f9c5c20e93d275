"""A real demo migration: throwaway local servers, generated mail, calendars and contacts, sync,
verify, re-sync.

    python3 -m mailferry.sandbox.demo [--keep DIR]

Starts a "/"-delimited source Dovecot and a "."-delimited target Dovecot on 127.0.0.1, fills the
source with the test corpus (nested and non-ASCII folders, special-use folders under other names,
every flag, duplicates, malformed MIME, a 30 MB message); starts Radicale (the source's calendars
and contacts) and Xandikos (the target's, over HTTPS with its own CA), both mailing to a local SMTP
sink, and fills Radicale with events (a recurring series with a moved occurrence, an all-day
event, a meeting with attendees, an attachment), tasks, a journal and contacts with photos. Then
runs the real ``mailferry`` command three times on the whole account: sync, verify, and a second
sync that must copy nothing. Exits non-zero if any step does not do what it should, or if any
server sent a single mail (an invitation) because of the migration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mailferry.adapters.dav import CollectionKind, DavAccount, DavLogin, DavSession, parse_dav_url
from mailferry.sandbox import davcorpus
from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.radicale import RadicaleServer
from mailferry.sandbox.smtpsink import SmtpSink
from mailferry.sandbox.xandikos import XandikosServer

SOURCE_SPECIAL_USE = {"Sent Messages": "\\Sent", "Deleted Messages": "\\Trash"}


def _mailferry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailferry.cli", *args]
    print("$ mailferry " + " ".join(args), flush=True)  # noqa: T201 - the demo talks to its user
    return subprocess.run(command, env=env, text=True, capture_output=True, check=False)


def _show(result: subprocess.CompletedProcess[str]) -> None:
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)


def _fill_dav(server: RadicaleServer, user: str, password: str) -> int:
    """Calendars and contacts of every shape on the source; returns how many items."""
    login = DavLogin(user, password)
    with DavAccount(DavSession(parse_dav_url(server.url(user)), login)) as account:
        kinds = {c.kind: c.href for c in account.collections()}
        calendar, book = kinds[CollectionKind.CALENDAR], kinds[CollectionKind.ADDRESSBOOK]
        items = {**davcorpus.every_kind(), "meeting": davcorpus.meeting("meeting-1@demo")}
        for name, data in items.items():
            account.put(f"{calendar}{name}.ics", data, CollectionKind.CALENDAR)
        cards = {
            "ann": davcorpus.card("ann@demo", "Ann Example", photo=True),
            "bob": davcorpus.card("bob@demo", "Bob Other"),
            "team": davcorpus.group("team@demo", ["ann@demo", "bob@demo"]),
        }
        for name, data in cards.items():
            account.put(f"{book}{name}.vcf", data, CollectionKind.ADDRESSBOOK)
        return len(items) + len(cards)


def run_demo(root: Path) -> int:
    with (
        DovecotServer(
            root / "old", delimiter="/", special_use=SOURCE_SPECIAL_USE, auto_create=False
        ) as old,
        DovecotServer(root / "new", delimiter=".") as new,
        SmtpSink() as sink,
        RadicaleServer(root / "radicale", smtp_port=sink.port) as radicale,
        XandikosServer(root / "xandikos", smtp_port=sink.port) as xandikos,
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
        radicale.add_user("alice", "source-secret")
        xandikos.add_user("alice", "target-secret")
        items = _fill_dav(radicale, "alice", "source-secret")
        print(f"source calendars and contacts filled: {items} items")  # noqa: T201
        seeded = len(sink.messages)  # Radicale mails the seeded meeting's attendees itself
        env = {
            **os.environ,
            "MAILFERRY_SOURCE_PASSWORD": "source-secret",
            "MAILFERRY_TARGET_PASSWORD": "target-secret",
        }
        source = f"imap://alice@old.example@127.0.0.1:{old.port}"
        target = f"imap://alice@new.example@127.0.0.1:{new.port}"
        state = str(root / "state.sqlite3")
        dav = [
            "--source-dav",
            radicale.url("alice"),
            "--target-dav",
            xandikos.url("alice"),
            "--target-ca-file",
            str(xandikos.ca_file),
        ]
        first = _mailferry("sync", source, target, "--state", state, *dav, env=env)
        _show(first)
        check = _mailferry("verify", source, target, "--state", state, *dav, env=env)
        _show(check)
        again = _mailferry("sync", source, target, "--state", state, *dav, "--json", env=env)
        _show(again)
        summary = json.loads(again.stdout) if again.returncode == 0 else {}
        copied_again = summary.get("messages_copied", -1), summary.get("items_copied", -1)
        sent = len(sink.messages) - seeded
        print(f"mail sent by the servers during the migration: {sent}")  # noqa: T201
        ok = (
            first.returncode == 0 and check.returncode == 0 and copied_again == (0, 0) and sent == 0
        )
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
