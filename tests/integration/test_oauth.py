"""OAuth2 logins against a real Dovecot whose ``oauth2`` passdb checks every token with a FAKE
IDENTITY PROVIDER (tests/integration/fake_idp.py, on 127.0.0.1) that issues tokens living 3 seconds.

The IMAP server is real; the identity provider is a stand-in, driven by the real client code: msal's
client-credentials flow (secret and certificate), our Google JWT-bearer grant, and a token command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import ssl
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from mailferry.adapters.imap import Credentials, ImapAccount
from mailferry.adapters.imap.wire import _appenduid_set
from mailferry.adapters.oauth.app_only import ClientCertificate, MsalAppOnly
from mailferry.adapters.oauth.command import command_grant
from mailferry.adapters.oauth.google import GoogleServiceAccount, ServiceAccountKey
from mailferry.adapters.oauth.tokens import CachedToken
from mailferry.bootstrap import Side, SyncRequest, open_pair
from mailferry.cli.app import main
from mailferry.domain.errors import AuthError
from mailferry.domain.model import AuthMethod, Endpoint, Security
from mailferry.domain.profiles import PROFILES
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy

from .fake_idp import FakeIdentityProvider, rsa_key_pem, self_signed_certificate
from .mailcheck import login, snapshot

pytestmark = pytest.mark.integration

LIFETIME = 3.0  # seconds a token of the fake identity provider lives
APP, APP_SECRET = "mailferry-app", "app-secret-value-123"

TOKEN_SCRIPT = """\
import json, ssl, sys, urllib.parse, urllib.request
url, user, password, ca = sys.argv[1:5]
form = urllib.parse.urlencode({"grant_type": "password", "username": user, "password": password})
context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen(url, form.encode(), context=context) as answer:
    print(json.load(answer)["access_token"])
"""


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeIdentityProvider]:
    with FakeIdentityProvider(tmp_path_factory.mktemp("idp"), lifetime=LIFETIME) as provider:
        provider.add_client(APP, APP_SECRET)
        yield provider


@pytest.fixture(scope="module")
def oauth_server(
    tmp_path_factory: pytest.TempPathFactory, idp: FakeIdentityProvider
) -> Iterator[DovecotServer]:
    root = tmp_path_factory.mktemp("dovecot_oauth")
    with DovecotServer(
        root, delimiter="/", oauth2_introspection_url=idp.introspection_url
    ) as server:
        yield server


def _endpoint(server: DovecotServer, user: str, port: int | None = None) -> Endpoint:
    return Endpoint("127.0.0.1", port or server.port, Security.NONE, user, None)


def _user(server: DovecotServer, name: str) -> str:
    server.add_user(name, f"pw-{name}")
    return name


def _fill(server: DovecotServer, user: str, folders: list[str], per_folder: int) -> None:
    client = login("127.0.0.1", server.port, user, f"pw-{user}")
    try:
        for name in folders:
            if name != "INBOX":
                client.create_folder(name)
            for i in range(per_folder):
                body = f"Message-ID: <{name}.{i}@oauth.test>\r\nSubject: {i}\r\n\r\n{'x' * 900}\r\n"
                client.append(name, body.encode(), [b"\\Seen"] if i % 2 else [], None)
    finally:
        client.logout()


def _mailbox(server: DovecotServer, user: str) -> dict:
    client = login("127.0.0.1", server.port, user, f"pw-{user}")
    try:
        return snapshot(client)
    finally:
        client.logout()


def test_xoauth2_and_oauthbearer_logins_with_msal_app_token(idp, oauth_server):
    user = _user(oauth_server, "msalbox")
    idp.mailbox_permissions[APP] = user
    app = MsalAppOnly(
        idp.tenant, APP, secret=APP_SECRET, authority_host=idp.authority.rsplit("/", 1)[0],
        ca_file=idp.ca_file,
    )  # fmt: skip
    tokens = CachedToken(app)
    for method in (AuthMethod.AUTO, AuthMethod.XOAUTH2, AuthMethod.OAUTHBEARER):
        account = ImapAccount.connect(
            _endpoint(oauth_server, user), Credentials(tokens=tokens, method=method)
        )
        assert "INBOX" in {f.name for f in account.list_folders()}
        account.close()
    assert tokens.fetches == 1  # one app token served all three sessions
    assert idp.counters.discovery >= 1  # msal read the tenant's OpenID configuration
    assert "client_credentials" in idp.counters.grants


def test_msal_certificate_credential(idp, oauth_server, tmp_path):
    user = _user(oauth_server, "certbox")
    key = rsa_key_pem(tmp_path / "key.pem")
    pem = tmp_path / "app.pem"
    pem.write_bytes((tmp_path / "key.pem").read_bytes() + self_signed_certificate(key))
    idp.add_client_certificate("cert-app", key.public_key())
    idp.mailbox_permissions["cert-app"] = user
    app = MsalAppOnly(
        idp.tenant, "cert-app", certificate=ClientCertificate.load(pem),
        authority_host=idp.authority.rsplit("/", 1)[0], ca_file=idp.ca_file,
    )  # fmt: skip
    account = ImapAccount.connect(
        _endpoint(oauth_server, user), Credentials(tokens=CachedToken(app))
    )
    account.close()
    assert "PRIVATE KEY" not in repr(app)


def test_google_service_account_delegation(idp, oauth_server, tmp_path):
    user = _user(oauth_server, "gsuite")
    key = rsa_key_pem(tmp_path / "sa.pem")
    email = "migrator@project.iam.gserviceaccount.com"
    idp.add_service_account(email, key.public_key())
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": email,
                "private_key_id": "k1",
                "private_key": (tmp_path / "sa.pem").read_text(),
                "token_uri": idp.token_url,
            }
        )
    )
    http = httpx.Client(verify=ssl.create_default_context(cafile=idp.ca_file))
    grant = GoogleServiceAccount(ServiceAccountKey.load(key_file), user, client=http)
    creds = Credentials(tokens=CachedToken(grant), method=AuthMethod.OAUTHBEARER)
    ImapAccount.connect(_endpoint(oauth_server, user), creds).close()


def test_refused_token_is_an_auth_error_without_the_token(idp, oauth_server, tmp_path):
    user = _user(oauth_server, "refused")
    script = tmp_path / "bad.py"
    script.write_text("print('fake-not-a-real-token-1234')\n")
    creds = Credentials(tokens=CachedToken(command_grant(f"{sys.executable} {script}")))
    with pytest.raises(AuthError) as caught:
        ImapAccount.connect(_endpoint(oauth_server, user), creds)
    assert "XOAUTH2" in str(caught.value)
    assert "fake-not-a-real-token" not in str(caught.value)


def _kick_every(
    server: DovecotServer, users: list[str], stored: int, proxy: Proxy, stop: threading.Event
) -> None:
    """Ends every session of ``users`` each time ``stored`` more messages were stored (the
    proxy's count of APPENDUID answers), as Exchange Online ends a session whose token expired
    ("Session invalidated - AccessTokenExpired"). Counted in messages, not seconds: a run makes
    as many reconnects on a fast machine as on a loaded one (kicks every 2 s ended every session
    before it stored anything on a loaded machine, and the back-off grew without end)."""
    mark = stored
    while not stop.wait(0.01):
        if _stored(proxy) < mark:
            continue
        mark += stored
        for user in users:
            with contextlib.suppress(Exception):  # no session to end just now
                server.doveadm("kick", user)


APPENDED = rb"OK \[APPENDUID "


def _stored(proxy: Proxy) -> int:
    """Messages the APPENDUID answers seen so far name (one answer per MULTIAPPEND burst)."""
    return sum(len(_appenduid_set(line)[1]) for line in proxy.seen(APPENDED))  # type: ignore[index]


# Messages a folder, the latency each way, and the messages each session stores before it is
# ended: five reconnects, each of a few round trips, besides the copy's own, make the run outlive a
# 3-second token on any machine (240 messages at 30 ms without kicks: ~4 s).
PER_FOLDER = 60
LATENCY = 0.03
KICK_EVERY = 48


def test_migration_outlives_many_tokens(idp, oauth_server, tmp_path):
    """A token command on the source, msal app-only on the target; tokens live 3 s, sessions are
    ended every 48 messages stored and the run spans several tokens of each side: it must finish
    with nothing failed."""
    source, target = _user(oauth_server, "longsrc"), _user(oauth_server, "longdst")
    idp.users[source] = "idp-password"
    idp.mailbox_permissions[APP] = target
    folders = ["INBOX", "Projects", "Projects/2024", "Archive"]
    _fill(oauth_server, source, folders, per_folder=PER_FOLDER)
    script = tmp_path / "token.py"
    script.write_text(TOKEN_SCRIPT)
    secret_file = tmp_path / "secret"
    secret_file.write_text(APP_SECRET + "\n")
    earlier = set(idp.tokens)
    with Proxy("127.0.0.1", oauth_server.port, latency=LATENCY) as proxy:
        proxy.watch(APPENDED)
        argv = [
            "sync", f"imap://{source}@127.0.0.1:{proxy.port}",
            f"imap://{target}@127.0.0.1:{proxy.port}",
            "--state", str(tmp_path / "state.sqlite3"), "--json", "--batch-size", "4",
            "--retry-wait", "0.2", "--retry-max-wait", "1", "--retries", "20",
            # One lane: Migration does not yet retry opening extra lanes when a session is
            # ended at that moment (service/migrate.py, _run_lanes).
            "--connections", "1",
            "--source-oauth-token-command",
            f"{sys.executable} {script} {idp.token_url} {source} idp-password {idp.ca_file}",
            "--target-m365-tenant", idp.tenant, "--target-m365-client-id", APP,
            "--target-m365-client-secret-file", str(secret_file),
            "--target-m365-authority", idp.authority.rsplit("/", 1)[0],
        ]  # fmt: skip
        stop = threading.Event()
        started = time.monotonic()
        kicker = threading.Thread(
            target=_kick_every,
            args=(oauth_server, [source, target], KICK_EVERY, proxy, stop),
            daemon=True,
        )
        kicker.start()
        try:
            result = CliRunner().invoke(
                main, argv, env={"REQUESTS_CA_BUNDLE": str(idp.ca_file)}, catch_exceptions=False
            )
        finally:
            stop.set()
            kicker.join()
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["messages_failed"] == 0, summary["failures"]
    assert summary["reconnects"] >= 3  # sessions were ended and opened again with new tokens
    # Each message counted once, however its pass was cut: an APPEND whose answer a kick lost
    # is found landed and counted as copied, not as already there.
    assert (summary["messages_copied"], summary["messages_skipped_existing"]) == (4 * PER_FOLDER, 0)
    # Both sides outlived their first token: a new one was fetched after it expired.
    tokens_of = {
        "source": idp.expiries(earlier, user=source),
        "target": idp.expiries(earlier, app=APP),
    }
    for side, tokens in tokens_of.items():
        assert len(tokens) >= 2, f"{side}: one token for the whole run ({took:.1f} s)"
        assert max(tokens) - min(tokens) >= LIFETIME, f"{side}: no token outlived ({took:.1f} s)"
    assert _mailbox(oauth_server, target) == _mailbox(oauth_server, source)
    assert APP_SECRET not in result.output
    assert "idp-password" not in result.output


def test_revoked_tokens_are_fetched_again_on_reconnect(idp, oauth_server, tmp_path):
    """The server refuses a token the cache still holds (revoked): the Connector asks for a new
    one (force_refresh) and the session opens."""
    user = _user(oauth_server, "revoked")
    other = _user(oauth_server, "revokedto")
    idp.users[user] = "pw-idp"
    idp.users[other] = "pw-idp"
    script = tmp_path / "token.py"
    script.write_text(TOKEN_SCRIPT)

    def side(name: str, who: str) -> Side:
        command = f"{sys.executable} {script} {idp.token_url} {who} pw-idp {idp.ca_file}"
        return Side(
            url=f"imap://{who}@127.0.0.1:{oauth_server.port}", name=name,
            oauth_token_command=command,
        )  # fmt: skip

    request = SyncRequest(
        source=side("source", user), target=side("target", other),
        state_path=tmp_path / "state.sqlite3",
    )  # fmt: skip
    with open_pair(request) as pair:
        rejected = idp.counters.rejected
        idp.revoke_all()
        account = pair.connector.source()
        assert "INBOX" in {f.name for f in account.list_folders()}
        assert idp.counters.rejected > rejected  # the cached token was tried and refused


def test_wrong_client_secret_is_one_line_exit_3(idp, oauth_server, tmp_path):
    user = _user(oauth_server, "wrongsecret")
    secret_file = tmp_path / "secret"
    secret_file.write_text("not-the-secret-987\n")
    argv = [
        "sync", f"imap://{user}@127.0.0.1:{oauth_server.port}",
        f"imap://{user}@127.0.0.1:{oauth_server.port}",
        "--state", str(tmp_path / "s.sqlite3"),
        "--source-m365-tenant", idp.tenant, "--source-m365-client-id", APP,
        "--source-m365-client-secret-file", str(secret_file),
        "--source-m365-authority", idp.authority.rsplit("/", 1)[0],
    ]  # fmt: skip
    env = {"REQUESTS_CA_BUNDLE": str(idp.ca_file), "MAILFERRY_TARGET_PASSWORD": f"pw-{user}"}
    result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "invalid_client" in lines[0]
    assert "not-the-secret-987" not in result.output


def test_profiles_exclude_system_folders_and_rename_reserved_names(oauth_server, tmp_path):
    source, target = _user(oauth_server, "m365src"), _user(oauth_server, "m365dst")
    _fill(oauth_server, source, ["INBOX", "Sync Issues", "Sync Issues/Conflicts", "Files"], 2)
    argv = [
        "sync", f"imap://{source}@127.0.0.1:{oauth_server.port}",
        f"imap://{target}@127.0.0.1:{oauth_server.port}",
        "--state", str(tmp_path / "s.sqlite3"), "--json", "--profile", "microsoft365",
        "--source-profile", "generic",
    ]  # fmt: skip
    env = {"MAILFERRY_SOURCE_PASSWORD": f"pw-{source}", "MAILFERRY_TARGET_PASSWORD": f"pw-{target}"}
    result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folders = set(_mailbox(oauth_server, target))
    assert "Files (migrated)" in folders  # the target reserves "Files"
    assert "Files" not in folders
    assert "Sync Issues" in folders  # a generic source has no system folders to leave out

    again = [
        *argv[:3],
        "--state",
        str(tmp_path / "s2.sqlite3"),
        "--json",
        "--profile",
        "microsoft365",
    ]
    other = _user(oauth_server, "m365dst2")
    again[2] = f"imap://{other}@127.0.0.1:{oauth_server.port}"
    env["MAILFERRY_TARGET_PASSWORD"] = f"pw-{other}"
    result = CliRunner().invoke(main, again, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folders = set(_mailbox(oauth_server, other))
    assert not {"Sync Issues", "Sync Issues/Conflicts", "Files", "Files (migrated)"} & folders


def test_profile_size_limit_reports_oversize_messages(oauth_server, tmp_path, monkeypatch):
    small = dataclasses.replace(PROFILES["microsoft365"], message_size_limit=3000)
    monkeypatch.setitem(PROFILES, "microsoft365", small)
    source, target = _user(oauth_server, "bigsrc"), _user(oauth_server, "bigdst")
    client = login("127.0.0.1", oauth_server.port, source, f"pw-{source}")
    client.append("INBOX", b"Subject: small\r\n\r\nhello\r\n", [], None)
    client.append("INBOX", b"Subject: big\r\n\r\n" + b"y" * 5000 + b"\r\n", [], None)
    client.logout()
    argv = [
        "sync", f"imap://{source}@127.0.0.1:{oauth_server.port}",
        f"imap://{target}@127.0.0.1:{oauth_server.port}",
        "--state", str(tmp_path / "s.sqlite3"), "--json", "--target-profile", "microsoft365",
    ]  # fmt: skip
    env = {"MAILFERRY_SOURCE_PASSWORD": f"pw-{source}", "MAILFERRY_TARGET_PASSWORD": f"pw-{target}"}
    result = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["messages_copied"] == 1
    assert [f["folder"] for f in summary["failures"]] == ["INBOX"]
    assert "over the target's" in summary["failures"][0]["reason"]
