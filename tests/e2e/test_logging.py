"""``mailferry --log-level debug --log-format json sync``: a real process against real Dovecot, one
side logging in with a password and the other with OAuth2 tokens from a fake identity provider.

Every line on stderr is one JSON record with its context; stdout holds only the ``--json`` summary;
neither a password nor a token appears anywhere in the output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from mailferry.sandbox.corpus import connect
from mailferry.sandbox.dovecot import DovecotServer
from tests.e2e.test_cli import run
from tests.integration.fake_idp import FakeIdentityProvider

pytestmark = pytest.mark.e2e

TOKEN_SCRIPT = """\
import json, ssl, sys, urllib.parse, urllib.request
url, user, password, ca = sys.argv[1:5]
form = urllib.parse.urlencode({"grant_type": "password", "username": user, "password": password})
context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen(url, form.encode(), context=context) as answer:
    print(json.load(answer)["access_token"])
"""
IDP_PASSWORD = "idp-secret-password-8842"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeIdentityProvider]:
    with FakeIdentityProvider(tmp_path_factory.mktemp("idp"), lifetime=60.0) as provider:
        yield provider


@pytest.fixture(scope="module")
def oauth_server(
    tmp_path_factory: pytest.TempPathFactory, idp: FakeIdentityProvider
) -> Iterator[DovecotServer]:
    root = tmp_path_factory.mktemp("dovecot_oauth")
    with DovecotServer(root, delimiter="/", oauth2_introspection_url=idp.introspection_url) as srv:
        yield srv


def _fill(server: DovecotServer, user: str, password: str) -> None:
    client = connect(server, user, password)
    try:
        client.create_folder("Projects")
        for folder in ("INBOX", "Projects"):
            for i in range(3):
                body = f"Message-ID: <{folder}.{i}@log.test>\r\nSubject: {i}\r\n\r\nbody {i}\r\n"
                client.append(folder, body.encode(), [b"\\Seen"], None)
    finally:
        client.logout()


def test_debug_json_logs_have_context_and_no_secret(
    dovecot_slash, oauth_server, idp, make_user, tmp_path
):
    source, password = make_user(dovecot_slash)
    target, _unused = make_user(oauth_server)
    idp.users[target] = IDP_PASSWORD
    _fill(dovecot_slash, source, password)
    script = tmp_path / "token.py"
    script.write_text(TOKEN_SCRIPT)
    command = f"{sys.executable} {script} {idp.token_url} {target} {IDP_PASSWORD} {idp.ca_file}"
    result = run(
        "--log-level", "debug", "--log-format", "json",
        "sync", f"imap://{source}@127.0.0.1:{dovecot_slash.port}",
        f"imap://{target}@127.0.0.1:{oauth_server.port}",
        "--state", str(tmp_path / "state.sqlite3"), "--json",
        "--target-oauth-token-command", command,
        env={"MAILFERRY_SOURCE_PASSWORD": password},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["messages_copied"] == 6  # stdout: the summary alone

    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    events = [r["event"] for r in records]
    for event in ("run.started", "folder.created", "folder.started", "message.copied"):
        assert event in events
    assert events[-1] == "run.finished"
    assert records[-1]["messages_copied"] == 6
    copied = [r for r in records if r["event"] == "message.copied"]
    assert {r["folder"] for r in copied} == {"INBOX", "Projects"}
    assert all(isinstance(r["uid"], int) and source in r["pair"] for r in copied)
    assert all(r["level"] and r["logger"].startswith("mailferry.") for r in records)

    output = result.stdout + result.stderr
    assert password not in output
    assert IDP_PASSWORD not in output
    assert idp.counters.issued >= 1  # tokens were issued and used ...
    assert "fake-" not in output  # ... and none of them (all start so) was printed
    for token in idp.tokens:
        assert token not in output
