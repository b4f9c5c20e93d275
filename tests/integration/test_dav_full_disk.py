"""A Radicale or Xandikos target whose storage fills up: the calendar and contact sync stops as
the mail sync does on a full target (no item blamed, what is left counted as remaining, exit 1),
no item is left half-written, and after more space a re-run copies the rest, nothing twice. The
servers' storage is a real tmpfs mounted small (the tests run as root in CI; skipped where
mounting is not allowed), as in test_files_full_disk.py.

What the two answer a PUT once their disk is full (docs/dav-servers.md):
    Radicale   507 "Insufficient Storage.  Please contact the administrator." (text/plain). The
               first refused item may be written all the same: when its file went in and its
               cache file did not. While the disk stays full Radicale skips it in listings and
               answers 404 to a GET; once there is room it is listed, whole.
    Xandikos   507, empty body. Nothing of the refused item is listed. Its git store may be
               left with stale lock files (dulwich cannot remove them on a full disk): one on
               the refused item's blob (that item's PUT is 423 Locked until it goes), and with
               several PUTs in flight often ``refs/heads/master.lock``: every later write to the
               collection is 423 until an administrator removes it. The test removes them, as
               for a git repository after a crash, once there is space again.
Both answer sync-collection 500 while full (they write as they answer it); Radicale a PROPFIND
of the home too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailferry.adapters.dav import CollectionKind, DavAccount, DavLogin, DavSession, parse_dav_url
from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer
from mailferry.adapters.tls import TlsOptions
from mailferry.cli.app import main
from mailferry.domain.errors import ItemError, TargetFullError
from mailferry.domain.items import identify
from mailferry.domain.normalise import content_differs
from mailferry.sandbox import davcorpus
from mailferry.sandbox.davserver import DavServer
from mailferry.sandbox.radicale import RadicaleServer
from mailferry.sandbox.xandikos import XandikosServer
from tests.integration.smalldisk import Disk, mount_small_disk

pytestmark = pytest.mark.integration

EVENTS, CARDS = 40, 5
# Room for some of them, not all: Radicale keeps a file and a cache file an item (a 4 KiB page
# each on tmpfs); Xandikos a git repository per collection (its two take ~200 KiB) and objects.
SMALL = {"radicale": "160k", "xandikos": "520k"}
SERVERS = {"radicale": RadicaleServer, "xandikos": XandikosServer}
OTHER = {"radicale": "xandikos", "xandikos": "radicale"}
USER, PASSWORD = "full", "pw-full"
KINDS = (CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK)


def on_small_disk(kind: str, size: str) -> type[DavServer]:
    """The server ``kind`` with its collections on a tmpfs of ``size``, mounted before it starts
    and unmounted when it stops."""
    base = SERVERS[kind]

    class Small(base):
        disk: Disk
        defaults: dict[CollectionKind, str]  # the user's collections (listed while not full)

        def _prepare_files(self) -> None:
            super()._prepare_files()
            self.disk = mount_small_disk(self.data_dir / "collections", size)

        def stop(self) -> None:
            if self._data is not None:
                self.disk.unmount()
            super().stop()

    return Small


@contextmanager
def full_server(kind: str, tmp_path: Path) -> Iterator[DavServer]:
    with on_small_disk(kind, SMALL[kind])(tmp_path / kind) as server:
        server.add_user(USER, PASSWORD)
        with account_on(server) as account:  # the first login makes the default collections
            server.defaults = {k: default(account, k) for k in KINDS}
        yield server


def account_on(server: DavServer, user: str = USER, password: str = PASSWORD) -> DavAccount:
    url = parse_dav_url(server.url(user))
    return DavAccount(DavSession(url, DavLogin(user, password), TlsOptions(ca_file=server.ca_file)))


def default(account: DavAccount | MemoryDavAccount, kind: CollectionKind) -> str:
    return next(c.href for c in account.collections() if c.kind is kind)


def seed(account: DavAccount) -> dict[str, bytes]:
    """EVENTS events and CARDS cards in the default collections; their bytes by UID."""
    calendar = default(account, CollectionKind.CALENDAR)
    book = default(account, CollectionKind.ADDRESSBOOK)
    sent = {}
    for n in range(EVENTS):
        data = davcorpus.simple_event(f"full-{n:02}@t", f"Meeting {n} " + "x" * 300)
        account.put(f"{calendar}e{n:02}.ics", data, CollectionKind.CALENDAR)
        sent[f"full-{n:02}@t"] = data
    for n in range(CARDS):
        data = davcorpus.card(f"card-{n}@t", f"Person{n} Example")
        account.put(f"{book}c{n}.vcf", data, CollectionKind.ADDRESSBOOK)
        sent[f"card-{n}@t"] = data
    return sent


def on_target(server: DavServer) -> list[tuple[str, bytes]]:
    """(UID, bytes) of every item the target lists, each read with GET: what it stores. (Not
    found through the homes: a full Radicale answers that PROPFIND 500.)"""
    found = []
    with account_on(server) as account:
        for href in server.defaults.values():
            for ref in account.items(href):
                data = account.get(ref.href).data
                found.append((identify(data).uid or "", data))
    return found


def assert_whole(found: list[tuple[str, bytes]], sent: dict[str, bytes]) -> None:
    """Each item there is one of the source's, whole (same content), and there once."""
    uids = [uid for uid, _data in found]
    assert len(uids) == len(set(uids)), f"twice on the target: {uids}"
    for uid, data in found:
        kind = CollectionKind.ADDRESSBOOK if uid.startswith("card-") else CollectionKind.CALENDAR
        assert content_differs(kind, sent[uid], data) is None, f"{uid} is not whole"


def sync(command: str, source: DavServer, src_user: tuple[str, str], target: DavServer, *args: str):
    """``mailferry COMMAND SOURCE TARGET ARGS`` in-process, with short retries."""
    argv = [command, source.url(src_user[0]), target.url(USER), *args, "--retries", "2"]
    argv += ["--retry-wait", "0.1", "--retry-max-wait", "0.2"]
    for side, server in (("source", source), ("target", target)):
        if server.ca_file is not None:
            argv += [f"--{side}-ca-file", str(server.ca_file)]
    env = {"MAILFERRY_SOURCE_PASSWORD": src_user[1], "MAILFERRY_TARGET_PASSWORD": PASSWORD}
    return CliRunner().invoke(main, argv, env=env, catch_exceptions=False)


@pytest.mark.parametrize("kind", ["radicale", "xandikos"])
def test_a_full_dav_target_stops_the_sync_and_more_space_finishes_it(
    kind, tmp_path, request, make_user
):
    source = request.getfixturevalue(OTHER[kind])
    src_user = make_user(source)
    with account_on(source, *src_user) as account:
        sent = seed(account)
    state = ("--state", str(tmp_path / "state.sqlite3"))
    with full_server(kind, tmp_path) as target:
        run = sync("sync", source, src_user, target, "--json", *state)
        assert run.exit_code == 1, run.output
        first = json.loads(run.stdout)
        assert (first["stopped"] or "").startswith("the target's storage is full ("), first
        assert "HTTP 507 Insufficient Storage" in first["stopped"]
        assert first["items_failed"] == 0, first["item_failures"]  # no item blamed for the disk
        assert first["retries"] == 0  # a 507 is no dropped connection
        assert 0 < first["items_copied"] < len(sent)
        assert first["items_copied"] + first["items_remaining"] == len(sent)
        landed = on_target(target)
        assert_whole(landed, sent)  # nothing cut off, nothing twice
        assert len(landed) >= first["items_copied"]

        rerun_while_full(kind, sync("sync", source, src_user, target, "--json", *state))
        assert_whole(on_target(target), sent)
        target.disk.resize("8m")
        if kind == "xandikos":  # what its administrator must do (module docstring)
            for stale in target.disk.path.rglob(".git/**/*.lock"):
                stale.unlink()
        run = sync("sync", source, src_user, target, "--json", *state)
        assert run.exit_code == 0, run.output
        again = json.loads(run.stdout)
        assert (again["stopped"], again["item_failures"], again["item_conflicts"]) == (None, [], [])
        # Every item once: copied now, or there already (copied by the first run, or, on
        # Radicale, the refused one it stored all the same, settled from its intent).
        there = again["items_copied"] + again["items_unchanged"] + again["items_skipped_existing"]
        assert there == len(sent)
        assert again["items_copied"] <= first["items_remaining"]
        landed = on_target(target)
        assert_whole(landed, sent)
        assert sorted(uid for uid, _data in landed) == sorted(sent)
        verify = sync("verify", source, src_user, target, *state)
        assert verify.exit_code == 0, verify.output


def rerun_while_full(kind: str, run) -> None:
    """A run before any space is freed. Xandikos lists (its sync-collection fails with 500 as
    it writes as it answers: listed with PROPFIND instead) and refuses the PUTs: the same stop;
    the item it refused first may fail with 423 (its blob's stale lock). Radicale cannot even
    list its collections (PROPFIND on the home: 500, it writes a cache): an account that fails,
    exit 3. Either way nothing is written."""
    if kind == "xandikos":
        assert run.exit_code == 1, run.output
        still = json.loads(run.stdout)
        assert (still["stopped"] or "").startswith("the target's storage is full ("), still
        assert still["items_copied"] == 0
        reasons = [f["reason"] for f in still["item_failures"]]
        assert all(r.endswith("PUT: HTTP 423 Resource Locked") for r in reasons), reasons
    else:
        assert run.exit_code == 3, run.output
        assert "PROPFIND" in run.output and "HTTP 500" in run.output


@pytest.mark.parametrize("kind", ["memory", "memory-storing", "radicale", "xandikos"])
def test_what_a_full_server_answers_a_put_and_keeps_of_it(kind, tmp_path):
    """The adapter's side: a PUT to a full server is TargetFullError (never a ConnectError to
    retry); after more room Radicale may show the refused item, whole, Xandikos does not. The
    fake does either (``store_refused``), so that the sync's unit tests cover both."""
    with _server(kind, tmp_path) as (account, grow):
        calendar = default(account, CollectionKind.CALENDAR)
        href, data, said = fill_until_full(account, calendar)
        assert "HTTP 507 Insufficient Storage" in said
        if kind != "memory-storing":  # Radicale hides it while its disk is full; the fake not
            assert href not in {r.href for r in account.items(calendar)}
            (answer,) = account.read(calendar, CollectionKind.CALENDAR, [href])
            assert isinstance(answer, ItemError)
        grow()
        stored = href in {r.href for r in account.items(calendar)}
        if kind != "radicale":  # stored when its item file fit and its cache file did not
            assert stored is (kind == "memory-storing")
        if stored:
            assert content_differs(CollectionKind.CALENDAR, data, account.get(href).data) is None
        for got in account.read(
            calendar, CollectionKind.CALENDAR, [r.href for r in account.items(calendar)]
        ):
            assert not isinstance(got, ItemError), got  # every item readable, none cut off


def fill_until_full(
    account: DavAccount | MemoryDavAccount, calendar: str
) -> tuple[str, bytes, str]:
    """Events PUT until one is refused as TargetFullError: its href, its bytes, the error."""
    for n in range(200):
        href, data = f"{calendar}e{n}.ics", davcorpus.simple_event(f"e{n}@t", "x" * 300)
        try:
            account.put(href, data, CollectionKind.CALENDAR)
        except TargetFullError as exc:
            return href, data, str(exc)
    pytest.fail("never full")


@contextmanager
def _server(
    kind: str, tmp_path: Path
) -> Iterator[tuple[DavAccount | MemoryDavAccount, Callable[[], None]]]:
    """An account on a server of ``kind`` that fills up, and how to give it more room."""
    if kind.startswith("memory"):
        server = MemoryDavServer(space=20_000, store_refused=kind == "memory-storing")
        server.add_user(USER)
        yield MemoryDavAccount(server, USER), lambda: setattr(server, "space", None)
        return
    with full_server(kind, tmp_path) as server, account_on(server) as account:
        yield account, lambda: server.disk.resize("8m")
