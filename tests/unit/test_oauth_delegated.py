"""Microsoft 365 delegated sign-ins without sockets: the settings' checks, the encrypted store (path,
permissions, atomic replacement), the one-line instruction when nothing is stored, and reprs."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

import mailferry
from mailferry.adapters.oauth.delegated import (
    MsalDelegated,
    SignInKey,
    SignInStore,
    login_command,
)
from mailferry.adapters.oauth.signin import SignInOptions
from mailferry.adapters.oauth.sources import SourceNames, TokenSource, token_provider
from mailferry.adapters.oauth.tokens import CachedToken
from mailferry.adapters.secrets import KEY_ENV
from mailferry.bootstrap import BatchConnector, Side, credentials, open_service
from mailferry.cli.app import main
from mailferry.config import STATE_ENV
from mailferry.domain.errors import AuthError, ConfigError
from mailferry.domain.model import Endpoint, Security
from mailferry.service.batches import BatchOptions, EndpointSpec
from tests.fakes import MemoryConnector, run_batch

AUTHORITY = "https://login.microsoftonline.com/organizations"
CACHE = json.dumps({"RefreshToken": {"k": {"secret": "rt-clear-text-0123456789"}}})


@pytest.fixture(autouse=True)
def _no_key_or_state_variables(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(STATE_ENV, raising=False)


def _delegated(**kw) -> TokenSource:
    return TokenSource(m365_delegated=True, **kw)


# -- settings --------------------------------------------------------------------------------------
def test_delegated_source_kinds_and_per_mailbox():
    source = _delegated(m365_client_id="app")
    source.check()
    assert source.kinds() == ["--m365-delegated"]
    assert source.kinds(SourceNames.options("--source-")) == ["--source-m365-delegated"]
    assert source.per_mailbox  # the user's own token
    assert not TokenSource(m365_tenant="t", m365_client_id="app").per_mailbox  # app-only


@pytest.mark.parametrize(
    ("source", "problems"),
    [
        (
            _delegated(),
            ["--m365-delegated needs --m365-client-id (the application id of a public client app)"],
        ),
        (
            _delegated(m365_client_id="app", m365_client_secret="s3cret", m365_certificate_pem="x"),
            [
                f"--m365-delegated signs in as the user: a public client has no secret; drop "
                f"--m365-{name}-file (it is for app-only logins)"
                for name in ("client-secret", "certificate")
            ],
        ),
    ],
)
def test_delegated_settings_problems_are_listed_together(source, problems):
    with pytest.raises(ConfigError) as caught:
        source.check()
    assert caught.value.problems == problems
    assert "s3cret" not in str(caught.value)


def test_delegated_with_another_source_is_a_conflict():
    with pytest.raises(ConfigError, match="give one token source, not --oauth-token-command and "):
        _delegated(m365_client_id="app", command="print-token").check()


def test_sync_side_conflicts_name_the_side_options(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    side = Side(
        url="imaps://bob@outlook.office365.com", name="source", m365_delegated=True,
        m365_client_id="app", m365_client_secret_file=secret,
    )  # fmt: skip
    assert side.token_sources == ["--source-m365-delegated"]
    endpoint = Endpoint("outlook.office365.com", 993, Security.SSL, "bob")
    with pytest.raises(ConfigError) as caught:
        credentials(side, endpoint, None)
    expected = (
        "source: --source-m365-delegated signs in as the user: a public client has no secret; "
        "drop --source-m365-client-secret-file (it is for app-only logins)"
    )
    assert caught.value.problems == [expected]


# -- the store -------------------------------------------------------------------------------------
def test_store_path_permissions_and_encryption(tmp_path):
    store = SignInStore(tmp_path / "data")
    key = SignInKey(AUTHORITY, "App-ID", "Bob@Contoso.com")
    path = store.save(key, CACHE)
    digest = hashlib.sha256(f"{AUTHORITY}|app-id|bob@contoso.com".encode()).hexdigest()
    assert path == tmp_path / "data" / "tokens" / f"{digest}.fernet"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700  # made here: ours alone
    assert "rt-clear-text" not in path.read_text()
    assert store.load(SignInKey(AUTHORITY + "/", "app-id", "bob@contoso.com")) == CACHE
    assert store.load(SignInKey(AUTHORITY, "app-id", "alice@contoso.com")) is None
    assert "rt-clear-text" not in repr(store)


def test_store_replaces_atomically_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    store = SignInStore(tmp_path)
    key = SignInKey(AUTHORITY, "app", "bob")
    first = store.save(key, "first")
    inode = first.stat().st_ino
    store.save(key, "second")
    assert first.stat().st_ino != inode  # a new file renamed over the old one
    assert store.load(key) == "second"

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match=r"cannot store the sign-in in .*No space left"):
        store.save(key, "third")
    assert store.load(key) == "second"
    assert sorted(p.name for p in store.directory.iterdir()) == [first.name]  # no temp file left


def test_store_tightens_a_loose_directory_and_refuses_a_foreign_key(tmp_path, monkeypatch):
    (tmp_path / "tokens").mkdir(mode=0o755)
    (tmp_path / "tokens").chmod(0o755)
    store = SignInStore(tmp_path)
    key = SignInKey(AUTHORITY, "app", "bob")
    store.save(key, CACHE)
    assert (tmp_path / "tokens").stat().st_mode & 0o777 == 0o700
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(ConfigError, match="cannot be decrypted") as caught:
        SignInStore(tmp_path).load(key)
    assert "rt-clear-text" not in str(caught.value)
    assert store.remove(key)
    assert not store.remove(key)


# -- the grant source without a sign-in ------------------------------------------------------------
def test_nothing_stored_is_an_auth_error_naming_the_command(tmp_path):
    state = tmp_path / "my state" / "state.sqlite3"
    options = SignInOptions(state, "imaps://bob@contoso.com@outlook.office365.com")
    grant = MsalDelegated("app-id", "bob@contoso.com", tenant="contoso.com", options=options)
    with pytest.raises(AuthError) as caught:
        grant(force=False)
    message = str(caught.value)
    assert "\n" not in message
    prefix = "no Microsoft 365 sign-in stored for bob@contoso.com (app app-id, tenant contoso.com);"
    assert message.startswith(prefix)
    command = message.split("sign in first: ", 1)[1]
    assert shlex.split(command) == [
        "mailferry", "login", "imaps://bob@contoso.com@outlook.office365.com",
        "--m365-client-id", "app-id", "--m365-tenant", "contoso.com", "--state", str(state),
    ]  # fmt: skip
    assert grant.path.parent == tmp_path / "my state" / "tokens"
    assert not grant.path.parent.exists()  # looking made nothing


def test_login_command_names_only_what_differs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    default = tmp_path / "mailferry" / "state.sqlite3"
    host = "https://login.microsoftonline.com"
    plain = login_command("imaps://a@h", "app", "organizations", host + "/", None)
    assert plain == "mailferry login imaps://a@h --m365-client-id app"
    assert login_command("imaps://a@h", "app", "organizations", host, default) == plain
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "other.sqlite3"))  # login would look there
    assert login_command("imaps://a@h", "app", "organizations", host, None) == (
        f"{plain} --state {default}"
    )
    national = login_command("imaps://a@h", "app", "t1", "https://login.microsoftonline.us", None)
    assert "--m365-tenant t1 --m365-authority https://login.microsoftonline.us" in national


def test_provider_and_reprs_hold_no_secret(tmp_path):
    source = _delegated(m365_client_id="app", m365_tenant="contoso")
    provider = token_provider(source, "bob@contoso.com", sign_in=SignInOptions(tmp_path / "s.db"))
    assert isinstance(provider, CachedToken)
    grant = MsalDelegated("app", "bob", options=SignInOptions(tmp_path / "s.db"))
    grant.store.save(grant.key, CACHE)
    for text in (repr(provider), repr(grant), repr(grant.store), repr(source)):
        assert "rt-clear-text" not in text
    assert repr(grant) == "MsalDelegated(user='bob', client_id='app', tenant='organizations')"


# -- the commands and the batch service ------------------------------------------------------------
def test_login_forget_and_bad_usage(tmp_path):
    state = tmp_path / "state.sqlite3"
    runner = CliRunner()
    argv = ["login", "imaps://bob@contoso.com@outlook.office365.com", "--m365-client-id", "app"]
    grant = MsalDelegated("app", "bob@contoso.com", options=SignInOptions(state))  # login's
    grant.store.save(grant.key, CACHE)
    forgot = runner.invoke(main, [*argv, "--state", str(state), "--forget"])
    assert forgot.exit_code == 0, forgot.output
    assert forgot.output == f"the sign-in of bob@contoso.com was removed ({grant.path})\n"
    assert not grant.path.exists()
    again = runner.invoke(main, [*argv, "--state", str(state), "--forget"])
    assert again.output.startswith("no sign-in of bob@contoso.com is stored")
    bad = runner.invoke(main, ["login", "bob@contoso.com", "--m365-client-id", "app"])
    assert bad.exit_code == 2
    assert "expected imaps://USER@HOST" in bad.output


def test_endpoint_add_delegated_and_per_mailbox_providers(tmp_path):
    state = tmp_path / "state.sqlite3"
    runner = CliRunner()
    base = ["endpoint", "add", "m365", "--host", "outlook.office365.com", "--state", str(state)]
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    bad = runner.invoke(
        main, [*base, "--m365-delegated", "--m365-client-id", "a", "--m365-client-secret-file",
               str(secret)],
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "--m365-delegated signs in as the user" in bad.output
    added = runner.invoke(main, [*base, "--m365-delegated", "--m365-client-id", "app"])
    assert added.exit_code == 0, added.output
    assert "Microsoft 365 delegated login" in added.output
    service = open_service(state)
    try:
        source = service.token_source(service.endpoint("m365"))
        assert source == TokenSource(m365_client_id="app", m365_delegated=True)
        service.create_batch(
            "b", "m365", "m365", b"EmailAddress,UserName,Password\na@t.example,a,\nb@t.example,b,\n",
            BatchOptions(),
        )  # fmt: skip
        jobs = run_batch(service, "b", MemoryConnector(tokens=BatchConnector(service)))
        a, b = jobs["a@t.example"], jobs["b@t.example"]
    finally:
        service.close()
    assert a.source_creds.tokens is not b.source_creds.tokens  # each user's own sign-in
    with pytest.raises(AuthError, match=r"sign in first: mailferry login imaps://a@outlook"):
        a.source_creds.tokens.token()  # nothing stored beside this state: the instruction


def test_app_only_endpoints_are_stored_as_before(tmp_path):
    service = open_service(tmp_path / "state.sqlite3")
    try:
        spec = EndpointSpec(
            "cmd", "h", tokens=TokenSource(command="print-token")
        )  # no m365_delegated key in its row
        record = service.add_endpoint(spec)
    finally:
        service.close()
    assert json.loads(record.oauth or "") == {
        "command": "print-token",
        "m365_authority": "https://login.microsoftonline.com",
    }


def test_sync_offers_the_delegated_options_and_starts_without_msal():
    result = CliRunner().invoke(main, ["sync", "--help"])
    assert "--source-m365-delegated" in result.output
    assert "--target-m365-delegated" in result.output
    code = (
        "import sys; from click.testing import CliRunner; from mailferry.cli.app import main; "
        "CliRunner().invoke(main, ['sync', '--help']); "
        "print([m for m in ('msal', 'requests') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(mailferry.__file__).parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "[]"
