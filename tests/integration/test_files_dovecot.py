"""Files and a real Dovecot: a live account backed up to Maildir and mbox, Dovecot reading the
Maildir mailferry wrote, and Dovecot's own Maildir and ``doveadm backup`` mbox read as sources;
compared message by message (bytes, flags, dates)."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailferry.adapters.files import MaildirAccount, MboxAccount, pstframes
from mailferry.adapters.imap import Credentials
from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.cli.app import main
from mailferry.domain.model import AppendRequest, Endpoint, Security
from mailferry.sandbox.dovecot import MAIL_GROUP, MAIL_USER
from mailferry.service.migrate import Migration, SyncOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
pstgrow = importlib.import_module("pstgrow")  # benchmarks/pstgrow.py: a PST N times over

pytestmark = pytest.mark.integration

WHEN = dt.datetime(2019, 3, 1, 12, 0, 7, tzinfo=dt.UTC)
MESSAGES = {
    "INBOX": [
        (b"Message-ID: <i1@x>\r\nSubject: one\r\n\r\nFrom the start of a line\r\n", {"\\Seen"}),
        (b"Subject: no id\r\n\r\n>From quoted\r\n", {"\\Flagged", "$Work"}),
    ],
    "Projects.2024": [
        (b"Message-ID: <p1@x>\r\nSubject: caf\xc3\xa9\r\n\r\nbody\r\n", {"\\Answered", "\\Seen"}),
    ],
}


def connect(server, user, password):
    endpoint = Endpoint("127.0.0.1", server.port, Security.NONE, user)
    return NamespacedAccount.connect(endpoint, Credentials(password))


def fill(account) -> None:
    for folder, messages in MESSAGES.items():
        if folder != "INBOX":
            account.create_folder(folder)
        requests = [
            AppendRequest(n, io.BytesIO(body), len(body), frozenset(flags), WHEN + dt.timedelta(n))
            for n, (body, flags) in enumerate(messages)
        ]
        assert all(r.ok for r in account.append_batch(folder, requests))


def snapshot(account, folder: str) -> list[tuple[bytes, frozenset[str], int]]:
    """(bytes, flags, date) of every message in a folder, in order."""
    metas = list(account.fetch_meta(folder))
    fetched = list(account.fetch_messages(folder, metas))
    bodies = {m.uid: m.body.read() for m in fetched}
    return [(bodies[m.uid], m.flags, int(m.internaldate.timestamp())) for m in metas]


def migrate(source, target, store=None):
    store = store or MemoryStateStore()
    return Migration(source, target, store, "pair", SyncOptions()).run()


def hand_to_dovecot(server, user: str, maildir: Path) -> None:
    """Put a Maildir where Dovecot keeps ``user``'s mail, owned as Dovecot's mail user."""
    home = server.data_dir / "home" / user
    home.mkdir(parents=True, exist_ok=True)
    shutil.copytree(maildir, home / "Maildir")
    for path in [home, *home.rglob("*")]:
        shutil.chown(path, MAIL_USER, MAIL_GROUP)


@pytest.fixture
def live(dovecot_dot, make_user):
    user, password = make_user(dovecot_dot)
    account = connect(dovecot_dot, user, password)
    fill(account)
    yield account, user
    account.close()


def test_backup_to_maildir_is_read_by_dovecot_and_back_out_to_mbox(
    dovecot_dot, make_user, live, tmp_path
):
    source, _user = live
    backup = MaildirAccount(tmp_path / "backup", writable=True)
    store = MemoryStateStore()
    first = migrate(source, backup, store)
    assert (first.messages_copied, first.failures) == (3, [])
    for folder in MESSAGES:
        assert snapshot(backup, folder) == snapshot(source, folder)
    assert migrate(source, backup, store).messages_copied == 0
    assert migrate(source, backup).messages_copied == 0  # lost state

    restored_user, password = make_user(dovecot_dot)
    hand_to_dovecot(dovecot_dot, restored_user, tmp_path / "backup")
    restored = connect(dovecot_dot, restored_user, password)
    try:
        names = {f.name for f in restored.list_folders()}
        assert set(MESSAGES) <= names
        for folder in MESSAGES:
            assert snapshot(restored, folder) == snapshot(source, folder)
        out = MboxAccount(tmp_path / "mbox", writable=True)
        assert migrate(restored, out).messages_copied == 3
        assert snapshot(out, "INBOX") == snapshot(source, "INBOX")
        assert snapshot(out, "Projects/2024") == snapshot(source, "Projects.2024")
    finally:
        restored.close()


def test_dovecot_maildir_read_as_a_source(dovecot_dot, live, tmp_path):
    source, user = live
    maildir = MaildirAccount(dovecot_dot.data_dir / "home" / user / "Maildir")
    assert set(MESSAGES) <= {f.name for f in maildir.list_folders()}
    for folder in MESSAGES:
        assert snapshot(maildir, folder) == snapshot(source, folder)


def test_doveadm_backup_mbox_read_as_a_source(dovecot_dot, live):
    source, user = live
    out = Path(tempfile.mkdtemp(prefix="mailferry-mbox-"))
    try:
        shutil.chown(out, MAIL_USER, MAIL_GROUP)  # doveadm writes as the mail user
        dovecot_dot.doveadm("backup", "-u", user, f"mbox:{out}/mail:INBOX={out}/mail/inbox")
        mbox = MboxAccount(out / "mail")
        assert {"INBOX", "Projects/2024"} <= {f.name for f in mbox.list_folders()}
        assert snapshot(mbox, "INBOX") == snapshot(source, "INBOX")
        assert snapshot(mbox, "Projects/2024") == snapshot(source, "Projects.2024")
    finally:
        shutil.rmtree(out)


def test_cli_backs_up_a_live_account_and_restores_it_to_another(
    dovecot_dot, make_user, live, tmp_path
):
    source, user = live
    restored_user, restored_password = make_user(dovecot_dot)
    port = dovecot_dot.port
    state = str(tmp_path / "state.sqlite3")
    backup = f"maildir://{tmp_path}/backup"
    env = {
        "MAILFERRY_SOURCE_PASSWORD": f"pw-{user}",
        "MAILFERRY_TARGET_PASSWORD": restored_password,
    }
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, ["sync", "--json", "--state", state, *args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert run(f"imap://{user}@127.0.0.1:{port}", backup)["messages_copied"] == 3
    assert run(f"imap://{user}@127.0.0.1:{port}", backup)["messages_copied"] == 0
    assert run(backup, f"imap://{restored_user}@127.0.0.1:{port}")["messages_copied"] == 3
    restored = connect(dovecot_dot, restored_user, restored_password)
    try:
        for folder in MESSAGES:
            assert snapshot(restored, folder) == snapshot(source, folder)
    finally:
        restored.close()


PST = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pst" / "outlook.pst"
if not PST.exists():  # a clone elsewhere (CI): the house's shared folder
    PST = Path("/work/shared/testdata/pst/outlook.pst")


@pytest.mark.skipif(not PST.exists(), reason="the shared PST test data is not here")
def test_cli_copies_a_pst_into_dovecot_and_verifies_it(dovecot_dot, make_user, tmp_path):
    user, password = make_user(dovecot_dot)
    urls = (f"pst://{PST}", f"imap://{user}@127.0.0.1:{dovecot_dot.port}")
    env = {"MAILFERRY_TARGET_PASSWORD": password}
    state = str(tmp_path / "state.sqlite3")
    runner = CliRunner()
    first = runner.invoke(main, ["sync", "--json", "--state", state, *urls], env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["messages_copied"] == 2
    checked = runner.invoke(main, ["verify", "--state", state, *urls], env=env)
    assert checked.exit_code == 0, checked.output
    target = connect(dovecot_dot, user, password)
    try:
        names = {f.name for f in target.list_folders()}
        assert {"INBOX", "收件箱", "Recovered_Group2"} <= names
        [meta] = target.fetch_meta("INBOX")
        assert meta.flags == {"\\Seen"}
        assert int(meta.internaldate.timestamp()) == 1177885653  # 2007-04-29 22:27:33 UTC
    finally:
        target.close()


@pytest.mark.skipif(not PST.exists(), reason="the shared PST test data is not here")
@pytest.mark.parametrize(("limit", "spill"), [(0, 1 << 30), (0, 200_000)])
def test_frames_spilled_or_dropped_copy_a_grown_pst_once_and_the_same(
    dovecot_dot, make_user, tmp_path, monkeypatch, limit, spill
):
    """Every measured frame goes to the spill file (or, past a spill of three frames of ~54 KB,
    most are dropped and built again from libpff): 50 messages of a grown PST are copied once,
    verify, and neither a re-run nor one after the state was lost copies anything again."""
    grown = tmp_path / "grown.pst"
    shutil.copyfile(PST, grown)
    pstgrow.rewrite(grown, 25)
    monkeypatch.setattr(pstframes.SHARED, "limit", limit)
    monkeypatch.setattr(pstframes.SHARED, "spill", spill)
    spilled = []
    write = pstframes.os.pwrite

    def counted(fd: int, data: bytes, offset: int) -> int:
        spilled.append(len(data))
        return write(fd, data, offset)

    monkeypatch.setattr(pstframes.os, "pwrite", counted)
    user, password = make_user(dovecot_dot)
    urls = (f"pst://{grown}", f"imap://{user}@127.0.0.1:{dovecot_dot.port}")
    env = {"MAILFERRY_TARGET_PASSWORD": password}
    runner = CliRunner()

    def sync(state: str) -> dict:
        result = runner.invoke(main, ["sync", "--json", "--state", state, *urls], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    state = str(tmp_path / "state.sqlite3")
    assert sync(state)["messages_copied"] == 50
    assert spilled  # the frames went through the spill file
    assert len(pstframes.SHARED) == 0  # every frame taken or forgotten with its session
    checked = runner.invoke(main, ["verify", "--state", state, *urls], env=env)
    assert checked.exit_code == 0, checked.output
    assert sync(state)["messages_copied"] == 0
    assert sync(str(tmp_path / "lost.sqlite3"))["messages_copied"] == 0
    target = connect(dovecot_dot, user, password)
    try:
        assert sum(target.status(f.name).exists for f in target.list_folders()) == 50
    finally:
        target.close()


def test_dovecot_layout_fs_maildir_read_as_a_source(dovecot_slash, make_user, tmp_path):
    """Dovecot with ``LAYOUT=fs`` (the "/" fixture): folders are nested directories, one of
    them non-ASCII (modified UTF-7 on disk); read with "/" as the delimiter, copied to a
    Maildir++ target with the same bytes, flags and dates."""
    user, password = make_user(dovecot_slash)
    live = connect(dovecot_slash, user, password)
    try:
        live.create_folder("Projects")
        for folder in ("INBOX", "Projects/2024", "Café"):
            if folder != "INBOX":
                live.create_folder(folder)
            body = f"Message-ID: <{folder}@x>\r\nSubject: {folder}\r\n\r\nbody\r\n".encode()
            request = AppendRequest(1, io.BytesIO(body), len(body), frozenset({"\\Seen"}), WHEN)
            assert all(r.ok for r in live.append_batch(folder, [request]))
        root = dovecot_slash.data_dir / "home" / user / "Maildir"
        assert (root / "Projects" / "2024" / "cur").is_dir()  # the layout is what it claims
        maildir = MaildirAccount(root)
        assert maildir.fs_layout
        assert maildir.delimiter == "/"
        names = {f.name for f in maildir.list_folders()}
        assert {"INBOX", "Projects/2024", "Café"} <= names
        for folder in ("INBOX", "Projects/2024", "Café"):
            assert snapshot(maildir, folder) == snapshot(live, folder)
        out = MaildirAccount(tmp_path / "out", writable=True)
        assert (migrate(maildir, out).messages_copied, out.fs_layout) == (3, False)
        assert snapshot(out, "Projects.2024") == snapshot(live, "Projects/2024")
    finally:
        live.close()
