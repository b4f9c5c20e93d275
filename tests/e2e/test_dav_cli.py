"""``mailferry sync``/``verify`` on CalDAV/CardDAV URLs, as a user runs them (real processes)."""

from __future__ import annotations

import http.server
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailferry.adapters.dav import CollectionKind, DavAccount, DavLogin, DavSession, parse_dav_url
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.items import identify
from mailferry.sandbox import davcorpus
from tests.integration.conftest_helpers import Account, bulk_load

pytestmark = pytest.mark.integration


@dataclass
class DavUser:
    server: object
    user: str
    password: str

    @property
    def url(self) -> str:
        return self.server.url(self.user)

    def account(self) -> DavAccount:
        url = parse_dav_url(self.url)
        tls = TlsOptions(ca_file=self.server.ca_file)
        return DavAccount(DavSession(url, DavLogin(self.user, self.password), tls))


def mailferry(
    command: str, source: DavUser, target: DavUser, state: Path, *args: str, env=None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mailferry.cli", command, source.url, target.url]
    argv += ["--state", str(state)]
    if target.server.ca_file:
        argv += ["--target-ca-file", str(target.server.ca_file)]
    if source.server.ca_file:
        argv += ["--source-ca-file", str(source.server.ca_file)]
    environment = {
        **os.environ,
        "MAILFERRY_SOURCE_PASSWORD": source.password,
        "MAILFERRY_TARGET_PASSWORD": target.password,
        **(env or {}),
    }
    return subprocess.run(
        [*argv, *args], env=environment, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
def users(request, make_user, radicale, xandikos):
    source = DavUser(radicale, *make_user(radicale))
    target = DavUser(xandikos, *make_user(xandikos))
    return source, target


def seed(user: DavUser, events: int, cards: int) -> None:
    with user.account() as account:
        calendar = next(c.href for c in account.collections() if c.kind is CollectionKind.CALENDAR)
        book = next(c.href for c in account.collections() if c.kind is CollectionKind.ADDRESSBOOK)
        for n in range(events):
            data = davcorpus.series(f"s{n}@t") if n % 10 == 0 else davcorpus.simple_event(f"e{n}@t")
            account.put(f"{calendar}e{n}.ics", data, CollectionKind.CALENDAR)
        for n in range(cards):
            card = davcorpus.card(f"c{n}@t", f"Person{n} Example", photo=n % 5 == 0)
            account.put(f"{book}c{n}.vcf", card, CollectionKind.ADDRESSBOOK)


def uids(user: DavUser) -> list[str]:
    """Every UID on the account, one entry per resource (a duplicate shows twice)."""
    found = []
    with user.account() as account:
        for collection in account.collections():
            if collection.kind not in {CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK}:
                continue
            refs = account.items(collection.href)
            got = account.read(collection.href, collection.kind, [r.href for r in refs])
            found.extend(identify(item.data).uid for item in got)
    return sorted(found)


def test_sync_json_verify_and_rerun(users, tmp_path):
    source, target = users
    seed(source, 12, 6)
    first = mailferry("sync", source, target, tmp_path / "s.db", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["items_copied"] == 18
    assert summary["items_failed"] == 0 and summary["item_failures"] == []
    kinds = sorted(c["kind"] for c in summary["collections"])
    assert kinds == ["addressbook", "calendar"]
    assert source.password not in first.stdout + first.stderr
    check = mailferry("verify", source, target, tmp_path / "s.db")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "identical" in check.stdout
    again = json.loads(mailferry("sync", source, target, tmp_path / "s.db", "--json").stdout)
    assert (again["items_copied"], again["items_unchanged"]) == (0, 18)
    assert uids(target) == uids(source)


def test_verify_finds_a_changed_item(users, tmp_path):
    source, target = users
    seed(source, 3, 0)
    assert mailferry("sync", source, target, tmp_path / "s.db").returncode == 0
    with target.account() as account:
        calendar = next(c.href for c in account.collections() if c.kind is CollectionKind.CALENDAR)
        ref = account.items(calendar)[0]
        uid = identify(account.get(ref.href).data).uid
        account.put(
            ref.href, davcorpus.simple_event(uid, "Tampered"), CollectionKind.CALENDAR, ref.etag
        )
    check = mailferry("verify", source, target, tmp_path / "s.db")
    assert check.returncode == 1
    assert "SUMMARY" in check.stdout and "DIFFERENCES FOUND" in check.stdout


def test_bad_setups_get_one_line_and_the_right_exit_code(users, tmp_path):
    source, target = users
    wrong = mailferry(
        "sync", source, target, tmp_path / "s.db", env={"MAILFERRY_TARGET_PASSWORD": "nope"}
    )
    assert wrong.returncode == 3, wrong.stderr
    assert "login refused" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "nope" not in wrong.stderr
    plain = subprocess.run(
        [sys.executable, "-m", "mailferry.cli", "sync", "http://a@dav.example.org/", target.url],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MAILFERRY_SOURCE_PASSWORD": "x", "MAILFERRY_TARGET_PASSWORD": "y"},
    )
    assert plain.returncode == 2 and "--allow-plaintext" in plain.stderr
    assert "Traceback" not in plain.stderr


@pytest.fixture
def plain_web(tmp_path):
    """A web server with no DAV: every PROPFIND is 501, every GET a directory listing."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_no_dav_at_the_url_is_an_account_error(users, tmp_path, plain_web):
    _source, target = users
    argv = [
        sys.executable,
        "-m",
        "mailferry.cli",
        "sync",
        f"http://u@127.0.0.1:{plain_web}/",
        target.url,
    ]
    run = subprocess.run(
        [*argv, "--state", str(tmp_path / "s.db"), "--target-ca-file", str(target.server.ca_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            **os.environ,
            "MAILFERRY_SOURCE_PASSWORD": "x",
            "MAILFERRY_TARGET_PASSWORD": target.password,
        },
    )
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_kill_9_at_any_moment_then_rerun_leaves_no_duplicate(users, tmp_path):
    source, target = users
    seed(source, 150, 60)
    state = tmp_path / "s.db"
    rng = random.Random(13)
    kills = 0
    for _attempt in range(6):
        argv = [sys.executable, "-m", "mailferry.cli", "sync", source.url, target.url]
        argv += ["--state", str(state), "--target-ca-file", str(target.server.ca_file)]
        env = {
            **os.environ,
            "MAILFERRY_SOURCE_PASSWORD": source.password,
            "MAILFERRY_TARGET_PASSWORD": target.password,
        }
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
        found = uids(target)
        assert len(found) == len(set(found)), "a duplicate after a kill"
    final = mailferry("sync", source, target, state, "--json")
    assert final.returncode == 0, final.stderr
    assert kills >= 2
    assert uids(target) == uids(source)
    assert mailferry("verify", source, target, state).returncode == 0


def test_the_whole_account_mail_then_calendars_and_contacts(
    users, tmp_path, dovecot_slash, dovecot_dot, make_user
):
    source, target = users
    seed(source, 4, 2)
    mail_src = Account(dovecot_slash, *make_user(dovecot_slash))
    mail_dst = Account(dovecot_dot, *make_user(dovecot_dot))
    bulk_load(mail_src, ["INBOX"], 5)
    argv = [sys.executable, "-m", "mailferry.cli", "sync", mail_src.url, mail_dst.url]
    argv += [
        "--state",
        str(tmp_path / "s.db"),
        "--source-dav",
        source.url,
        "--target-dav",
        target.url,
    ]
    argv += ["--target-ca-file", str(target.server.ca_file), "--json"]
    env = {
        **os.environ,
        "MAILFERRY_SOURCE_PASSWORD": mail_src.password,
        "MAILFERRY_TARGET_PASSWORD": mail_dst.password,
        "MAILFERRY_SOURCE_DAV_PASSWORD": source.password,
        "MAILFERRY_TARGET_DAV_PASSWORD": target.password,
    }
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["messages_copied"] >= 5 and summary["items_copied"] == 6
    assert "dav_seconds" in summary and "seconds" in summary
    without_dav_password = {k: v for k, v in env.items() if "_DAV_" not in k}
    wrong = subprocess.run(
        argv, env=without_dav_password, capture_output=True, text=True, timeout=300, check=False
    )
    assert (
        wrong.returncode == 3 and "login refused" in wrong.stderr
    )  # the mail password is not the DAV one
    assert uids(target) == uids(source)
