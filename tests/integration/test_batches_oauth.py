"""A batch through OAuth2 endpoints against a real Dovecot whose ``oauth2`` passdb checks every token
with a FAKE IDENTITY PROVIDER (tests/integration/fake_idp.py, on 127.0.0.1) issuing 3-second tokens.

The source endpoint takes its tokens from a command, the target from msal's client-credentials flow
(the real msal code path). Both are app tokens: one serves every mailbox, the SASL user names the
mailbox. Dovecot 2.3 does not pass the login name to the introspection endpoint, so the server is
told (``oauth2_username_format``) that an app token's username stands for any mailbox, as Exchange
Online's IMAP.AccessAsApp does for the mailboxes the app was given.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from mailferry.adapters.oauth.sources import TokenSource
from mailferry.bootstrap import open_service
from mailferry.bootstrap import scheduler as build_scheduler
from mailferry.cli.app import main
from mailferry.domain.model import Security
from mailferry.sandbox.dovecot import DovecotServer
from mailferry.sandbox.proxy import Proxy
from mailferry.service.batches import BatchOptions, EndpointSpec

from .fake_idp import FakeIdentityProvider
from .test_oauth import _fill, _mailbox

pytestmark = pytest.mark.integration

LIFETIME = 3.0
TENANT_APP = "tenant-app"  # the username an app token introspects to: any mailbox of the tenant
APP, APP_SECRET = "batch-app", "batch-app-secret"
CMD_APP, CMD_SECRET = "cmd-app", "cmd-app-secret"
TOKEN_SCRIPT = """\
import json, ssl, sys, urllib.parse, urllib.request
url, client, secret, ca = sys.argv[1:5]
form = {"grant_type": "client_credentials", "client_id": client, "client_secret": secret}
context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen(url, urllib.parse.urlencode(form).encode(), context=context) as answer:
    data = json.load(answer)
print(json.dumps({"access_token": data["access_token"], "expires_in": data["expires_in"]}))
"""
FOLDERS = ["INBOX", "Projects", "Projects/2024", "Files"]


@pytest.fixture
def idp(tmp_path):
    with FakeIdentityProvider(tmp_path / "idp", lifetime=LIFETIME) as provider:
        for client, secret in ((APP, APP_SECRET), (CMD_APP, CMD_SECRET)):
            provider.add_client(client, secret)
            provider.mailbox_permissions[client] = TENANT_APP
        yield provider


@pytest.fixture
def server(tmp_path, idp):
    with DovecotServer(
        tmp_path / "dovecot",
        delimiter="/",
        oauth2_introspection_url=idp.introspection_url,
        oauth2_username_format=TENANT_APP,
    ) as dovecot:
        yield dovecot


def _issued(idp: FakeIdentityProvider) -> Counter[str]:
    return Counter(issued.client for issued in idp.tokens.values())


def test_batch_through_token_command_and_msal_endpoints(idp, server, tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(idp.ca_file))  # msal's https to the fake IdP
    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    pairs = [(f"src{i}", f"dst{i}") for i in (1, 2)]
    for source, target in pairs:
        server.add_user(source, f"pw-{source}")
        server.add_user(target, f"pw-{target}")
        _fill(server, source, FOLDERS, per_folder=25)
    script = tmp_path / "token.py"
    script.write_text(TOKEN_SCRIPT)
    command = f"{sys.executable} {script} {idp.token_url} {CMD_APP} {CMD_SECRET} {idp.ca_file}"
    state = tmp_path / "state.sqlite3"
    service = open_service(state)
    with Proxy("127.0.0.1", server.port, latency=0.01) as proxy:
        try:
            # One connection per endpoint: the mailboxes run one after the other, so the second
            # logs in after the first one's tokens expired.
            service.add_endpoint(
                EndpointSpec("cmd", "127.0.0.1", proxy.port, Security.NONE, max_connections=1,
                             auth="oauthbearer", tokens=TokenSource(command=command))
            )  # fmt: skip
            service.add_endpoint(
                EndpointSpec(
                    "m365", "127.0.0.1", proxy.port, Security.NONE, max_connections=1,
                    tokens=TokenSource(
                        m365_tenant=idp.tenant, m365_client_id=APP, m365_client_secret=APP_SECRET,
                        m365_authority=idp.authority.rsplit("/", 1)[0],
                    ),
                    profile="microsoft365",
                )
            )  # fmt: skip
            rows = [f"{t}@tenant.example,{s},,{t}," for s, t in pairs]
            csv = "EmailAddress,UserName,Password,TargetUserName,TargetPassword\n"
            service.create_batch(
                "b", "cmd", "m365", (csv + "\n".join(rows)).encode(), BatchOptions()
            )
            service.start("b")
            build_scheduler(service, batch="b", workers=4).run(threading.Event(), until_idle=True)
            first = _issued(idp)
            time.sleep(LIFETIME + 0.5)  # every token expired: the final pass must fetch new ones
            service.complete("b")
            build_scheduler(service, batch="b", workers=4).run(threading.Event(), until_idle=True)
            status = service.status("b")
        finally:
            service.close()
        tested = CliRunner().invoke(
            main, ["endpoint", "test", "m365", "--user", "dst1", "--state", str(state)]
        )
    assert [(m.record.email, m.state, m.record.reason) for m in status.mailboxes] == [
        (f"{t}@tenant.example", "completed", None) for _, t in pairs
    ]
    for source, target in pairs:
        want = _mailbox(server, source)
        want["Files (migrated)"] = want.pop("Files")  # the target's profile: a reserved name
        assert _mailbox(server, target) == want
    issued = _issued(idp)
    assert issued[CMD_APP] > first[CMD_APP] >= 1  # refreshed, not one token per login
    assert issued[APP] > first[APP] >= 1
    assert APP_SECRET not in state.read_bytes().decode("latin-1")
    assert tested.exit_code == 0, tested.output
    assert "XOAUTH2 OAUTHBEARER" in tested.output
    assert "login used: xoauth2 (token)" in tested.output
    assert "profile: microsoft365 (chosen)" in tested.output
