"""Microsoft 365 delegated sign-ins (device code flow) against a real Dovecot whose ``oauth2`` passdb
checks every token with a FAKE IDENTITY PROVIDER (tests/integration/fake_idp.py, on 127.0.0.1) that
issues tokens living 3 seconds.

The real msal code runs (``PublicClientApplication`` over HTTPS with the fake's CA); the test plays
the user who opens the verification page and enters the code (``idp.approve``).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import mailferry
from mailferry.adapters.secrets import KEY_ENV, SecretBox
from mailferry.bootstrap import Side, SyncRequest, open_pair, open_service
from mailferry.bootstrap import scheduler as build_scheduler
from mailferry.cli.app import main
from mailferry.domain.model import Security
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy
from mailferry.service.batches import BatchOptions, EndpointSpec

from .fake_idp import DEVICE_CODE, FakeIdentityProvider
from .test_oauth import APPENDED, KICK_EVERY, _fill, _kick_every, _mailbox, _user

pytestmark = pytest.mark.integration

LIFETIME = 3.0
# Messages a folder: sessions are ended every KICK_EVERY messages stored, so the run spans
# several 3-second tokens on any machine (test_oauth.py's kicker).
PER_FOLDER = 60
APP = "mailferry-public-app"  # a public client app: no secret


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeIdentityProvider]:
    with FakeIdentityProvider(tmp_path_factory.mktemp("idp"), lifetime=LIFETIME) as provider:
        provider.add_public_client(APP)
        yield provider


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: FakeIdentityProvider):
    root = tmp_path_factory.mktemp("dovecot_delegated")
    with DovecotServer(
        root, delimiter="/", oauth2_introspection_url=idp.introspection_url
    ) as dovecot:
        yield dovecot


@pytest.fixture(autouse=True)
def _environment(monkeypatch, idp):
    monkeypatch.delenv(KEY_ENV, raising=False)  # the key ring: secret.key beside the state
    monkeypatch.delenv("MAILFERRY_STATE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(idp.ca_file))  # msal's HTTPS to the fake


def _authority(idp: FakeIdentityProvider) -> str:
    return idp.authority.rsplit("/", 1)[0]


def _login_argv(idp, url: str, state: Path) -> list[str]:
    return [
        "login", url, "--m365-client-id", APP, "--m365-authority", _authority(idp),
        "--state", str(state),
    ]  # fmt: skip


@contextlib.contextmanager
def _user_approves(idp: FakeIdentityProvider, account: str) -> Iterator[None]:
    """The person at the browser: approves the next device code as ``account``."""
    done = threading.Event()

    def approve() -> None:
        while not done.wait(0.05):
            for code in idp.pending_user_codes():
                idp.approve(code, account)
                return

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _login(idp, url: str, state: Path, account: str) -> str:
    with _user_approves(idp, account):
        result = CliRunner().invoke(main, _login_argv(idp, url, state), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _login_subprocess(idp, url: str, state: Path, account: str) -> tuple[int, str, str]:
    """``mailferry login`` as its own process with stdin not a terminal; the code is read from its
    stderr, as a person would, and approved."""
    env = {k: v for k, v in os.environ.items() if k not in (KEY_ENV, "MAILFERRY_STATE")}
    env["PYTHONPATH"] = str(Path(mailferry.__file__).parents[1])
    with subprocess.Popen(
        [sys.executable, "-m", "mailferry.cli", *_login_argv(idp, url, state)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        shown = process.stderr.readline()
        code = shown.rstrip(". \n").split("enter the code ")[-1].split()[0]
        idp.approve(code, account)
        out, rest = process.communicate(timeout=60)
    return process.returncode, out, shown + rest


def _secrets_of(idp: FakeIdentityProvider) -> list[str]:
    """Every access and refresh token the fake identity provider issued."""
    return [*idp.tokens, *idp.refresh_tokens]


def _sync_argv(idp, source: str, target: str, port: int, state: Path) -> list[str]:
    return [
        "sync", f"imap://{source}@127.0.0.1:{port}", f"imap://{target}@127.0.0.1:{port}",
        "--state", str(state), "--json", "--source-m365-delegated",
        "--source-m365-client-id", APP, "--source-m365-authority", _authority(idp),
    ]  # fmt: skip


def test_login_then_sync_outlives_many_tokens_on_refresh_tokens(idp, server, tmp_path):
    source, target = _user(server, "delegsrc"), _user(server, "delegdst")
    _fill(server, source, ["INBOX", "Projects", "Projects/2024", "Archive"], per_folder=PER_FOLDER)
    state = tmp_path / "state.sqlite3"
    started_flows = idp.counters.device_authorizations

    code, out, err = _login_subprocess(idp, f"imaps://{source}@127.0.0.1", state, source)
    assert code == 0, err
    assert idp.counters.device_authorizations == started_flows + 1
    assert "/devicelogin and enter the code" in err  # the user was told where to go
    stored = Path(out.strip().rsplit(" ", 1)[-1])
    assert out.startswith(f"signed in as {source}; the sign-in is stored encrypted in ")
    assert stored.parent == tmp_path / "tokens"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert stored.parent.stat().st_mode & 0o777 == 0o700
    text = stored.read_text()
    refresh_tokens = list(idp.refresh_tokens)
    assert refresh_tokens
    assert not [t for t in _secrets_of(idp) if t in text]  # neither token in clear text
    clear = SecretBox.open(tmp_path).decrypt(text.strip()).reveal()
    assert any(t in clear for t in refresh_tokens)  # ...though the refresh token is in there
    assert not [t for t in _secrets_of(idp) if t in out + err]

    grants_before = len(idp.counters.grants)
    earlier = set(idp.tokens)
    # 80 ms round trips, bursts of 4 messages, one connection, sessions ended every KICK_EVERY
    # messages stored: the run sees several tokens expire.
    with Proxy("127.0.0.1", server.port, latency=0.04) as proxy:
        proxy.watch(APPENDED)
        argv = [
            *_sync_argv(idp, source, target, proxy.port, state),
            "--batch-size", "4", "--retry-wait", "0.2", "--retry-max-wait", "1",
            "--retries", "20", "--connections", "1",
        ]  # fmt: skip
        stop = threading.Event()
        kicker = threading.Thread(
            target=_kick_every, args=(server, [source], KICK_EVERY, proxy, stop), daemon=True
        )
        kicker.start()
        try:
            env = {"MAILFERRY_TARGET_PASSWORD": f"pw-{target}"}
            result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
        finally:
            stop.set()
            kicker.join()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["messages_copied"] == 4 * PER_FOLDER
    assert summary["messages_failed"] == 0, summary["failures"]
    assert summary["reconnects"] >= 3  # sessions ended, opened again with refreshed tokens
    expiries = idp.expiries(earlier, user=source)
    assert len(expiries) >= 2 and max(expiries) - min(expiries) >= LIFETIME  # a token outlived
    grants = idp.counters.grants[grants_before:]
    assert grants.count("refresh_token") >= 1
    assert set(grants) == {"refresh_token"}  # every token after the first came from one
    assert DEVICE_CODE not in grants  # never a new sign-in
    assert idp.counters.device_authorizations == started_flows + 1
    assert _mailbox(server, target) == _mailbox(server, source)
    assert not [t for t in _secrets_of(idp) if t in result.output]
    assert stored.read_text() != text  # the rotated refresh token was stored (re-encrypted)


def test_revoked_sign_in_is_exit_3_with_the_instruction(idp, server, tmp_path):
    source, target = _user(server, "revokedsrc"), _user(server, "revokeddst")
    state = tmp_path / "state.sqlite3"
    _login(idp, f"imap://{source}@127.0.0.1:{server.port}", state, source)
    idp.revoke_sign_ins(source)
    flows = idp.counters.device_authorizations
    argv = _sync_argv(idp, source, target, server.port, state)
    env = {"MAILFERRY_TARGET_PASSWORD": f"pw-{target}"}
    result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 3, result.output
    (line,) = result.output.strip().splitlines()
    assert f"the stored Microsoft 365 sign-in of {source} was refused: invalid_grant" in line
    assert f"sign in again: mailferry login imap://{source}@127.0.0.1:{server.port} " in line
    assert f"--state {state}" in line
    assert "Traceback" not in result.output
    assert not [t for t in _secrets_of(idp) if t in result.output]
    assert idp.counters.device_authorizations == flows  # not interactive: no device flow


def test_sync_without_a_sign_in_tells_how_to_make_one(idp, server, tmp_path):
    source, target = _user(server, "nosignin"), _user(server, "nosignindst")
    flows, grants = idp.counters.device_authorizations, len(idp.counters.grants)
    argv = _sync_argv(idp, source, target, server.port, tmp_path / "state.sqlite3")
    result = CliRunner().invoke(
        main, argv, env={"MAILFERRY_TARGET_PASSWORD": "x"}, catch_exceptions=False
    )
    assert result.exit_code == 3, result.output
    (line,) = result.output.strip().splitlines()
    assert f"no Microsoft 365 sign-in stored for {source}" in line
    assert f"sign in first: mailferry login imap://{source}@127.0.0.1:{server.port}" in line
    assert (idp.counters.device_authorizations, len(idp.counters.grants)) == (flows, grants)


def test_sign_in_as_another_account_is_not_stored(idp, server, tmp_path):
    user = _user(server, "wrongaccount")
    state = tmp_path / "state.sqlite3"
    with _user_approves(idp, "someone.else@contoso.test"):
        result = CliRunner().invoke(
            main, _login_argv(idp, f"imaps://{user}@127.0.0.1", state), catch_exceptions=False
        )
    assert result.exit_code == 3, result.output
    assert f"made as someone.else@contoso.test, not {user}" in result.output
    assert not (tmp_path / "tokens").exists() or not list((tmp_path / "tokens").iterdir())


def test_batch_endpoint_with_delegated_sign_ins(idp, server, tmp_path):
    """Each mailbox user signs in with `mailferry login`; the scheduler finds every sign-in by
    authority, app and user. One whose sign-in was revoked fails alone, with the instruction; once
    that user signs in again, the running scheduler (as `serve`) picks the new sign-in up."""
    pairs = [(_user(server, f"bsrc{i}"), _user(server, f"bdst{i}")) for i in (1, 2, 3)]
    for source, _ in pairs:
        _fill(server, source, ["INBOX", "Work"], per_folder=5)
    state = tmp_path / "state.sqlite3"
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["endpoint", "add", "m365", "--host", "127.0.0.1", "--port", str(server.port),
         "--security", "none", "--m365-delegated", "--m365-client-id", APP,
         "--m365-authority", _authority(idp), "--state", str(state)],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Microsoft 365 delegated login" in added.output
    for _, target in pairs:
        _login(idp, f"imap://{target}@127.0.0.1:{server.port}", state, target)
    late = pairs[2][1]
    idp.revoke_sign_ins(late)
    service = open_service(state)
    stop = threading.Event()
    scheduler = build_scheduler(service, batch="d", workers=3, poll=0.2)
    running = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    try:
        service.add_endpoint(EndpointSpec("old", "127.0.0.1", server.port, Security.NONE))
        rows = "".join(f"{t}@tenant.example,{s},pw-{s},{t},\n" for s, t in pairs)
        csv = "EmailAddress,UserName,Password,TargetUserName,TargetPassword\n" + rows
        service.create_batch("d", "old", "m365", csv.encode(), BatchOptions())
        service.start("d")
        running.start()
        first = _settled(service, "d")
        _login(idp, f"imap://{late}@127.0.0.1:{server.port}", state, late)
        service.resume("d")
        second = _settled(service, "d")
    finally:
        stop.set()
        running.join()
        service.close()
    for _, target in pairs[:2]:
        assert (first[target].state, first[target].record.reason) == ("synced", None)
    assert first[late].state == "failed"
    reason = first[late].record.reason or ""
    assert f"the stored Microsoft 365 sign-in of {late} was refused: invalid_grant" in reason
    assert f"sign in again: mailferry login imap://{late}@127.0.0.1:{server.port} " in reason
    assert (second[late].state, second[late].record.reason) == ("synced", None)
    for source, target in pairs:
        assert _mailbox(server, target) == _mailbox(server, source)
    tested = runner.invoke(
        main, ["endpoint", "test", "m365", "--user", pairs[0][1], "--state", str(state)]
    )
    assert tested.exit_code == 0, tested.output
    assert "login used: xoauth2 (token)" in tested.output
    assert not [t for t in _secrets_of(idp) if t in tested.output + added.output]


def _settled(service, batch: str, timeout: float = 60.0) -> dict:
    """The batch's mailboxes by target user, once none is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = service.status(batch).mailboxes
        if all(v.state in {"synced", "failed"} for v in views):
            return {v.record.target_user: v for v in views}
        time.sleep(0.1)
    raise AssertionError(f"batch {batch} did not settle: {service.status(batch).counts()}")


def test_interactive_run_signs_in_inline_before_connecting(idp, server, tmp_path, monkeypatch):
    """A terminal (``show_sign_in`` set): no sign-in stored, or a refused one, is made inline, once,
    before any session is opened (none waits on a person); the next run finds it stored."""
    source, target = _user(server, "inlinesrc"), _user(server, "inlinedst")
    monkeypatch.setenv("INLINE_TARGET_PASSWORD", f"pw-{target}")
    shown: list[tuple[str, int]] = []  # the message, and the IMAP connections made until then
    with Proxy("127.0.0.1", server.port) as proxy:
        request = SyncRequest(
            source=Side(
                url=f"imap://{source}@127.0.0.1:{proxy.port}", name="source",
                m365_delegated=True, m365_client_id=APP, m365_authority=_authority(idp),
            ),
            target=Side(
                url=f"imap://{target}@127.0.0.1:{proxy.port}", name="target",
                password_env="INLINE_TARGET_PASSWORD",
            ),
            state_path=tmp_path / "state.sqlite3",
            show_sign_in=lambda message: shown.append((message, proxy.total_connections)),
        )  # fmt: skip
        started = []
        for revoke in (False, True, False):  # nothing stored; stored but revoked; stored
            if revoke:
                idp.revoke_sign_ins(source)
            flows = idp.counters.device_authorizations
            with _user_approves(idp, source), open_pair(request) as pair:
                assert "INBOX" in {f.name for f in pair.source.list_folders()}
            started.append(idp.counters.device_authorizations - flows)
    assert started == [1, 1, 0]
    assert [connections for _, connections in shown] == [0, 2]  # before the run's sessions
    assert all("enter the code" in message for message, _ in shown)
    assert len(list((tmp_path / "tokens").iterdir())) == 1
