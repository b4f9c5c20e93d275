"""Token providers and the SASL side of token logins: no sockets (httpx takes a mock transport)."""

from __future__ import annotations

import base64
import json
import sys
import threading
import urllib.parse
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailferry.adapters.imap.sasl import token_response
from mailferry.adapters.imap.session import (
    AuthMethod,
    Credentials,
    choose_method,
    offered_logins,
)
from mailferry.adapters.oauth.app_only import MsalAppOnly
from mailferry.adapters.oauth.command import command_grant
from mailferry.adapters.oauth.google import JWT_BEARER, GoogleServiceAccount, ServiceAccountKey
from mailferry.adapters.oauth.tokens import CachedToken, Grant
from mailferry.domain.errors import AuthError, ConfigError, ConnectError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fixed:
    def __init__(self, token: str) -> None:
        self.value = token

    def __call__(self, force: bool) -> Grant:
        return Grant(self.value)


class Source:
    def __init__(self, lifetime: float | None = 3600.0) -> None:
        self.lifetime = lifetime
        self.calls: list[bool] = []

    def __call__(self, force: bool) -> Grant:
        self.calls.append(force)
        return Grant(f"token-{len(self.calls)}", self.lifetime)


def test_cached_until_shortly_before_expiry():
    clock, source = Clock(), Source(3600.0)
    tokens = CachedToken(source, clock=clock, margin=300.0)
    assert tokens.token() == "token-1"
    clock.now += 3299
    assert tokens.token() == "token-1"
    clock.now += 1  # 300 s before expiry: refreshed ahead of time
    assert tokens.token() == "token-2"
    assert source.calls == [False, False]


def test_short_tokens_refresh_at_half_their_life():
    clock, source = Clock(), Source(4.0)
    tokens = CachedToken(source, clock=clock, margin=300.0)
    tokens.token()
    clock.now += 1.9
    assert tokens.token() == "token-1"
    clock.now += 0.1
    assert tokens.token() == "token-2"


def test_force_refresh_skips_the_cache_and_tells_the_source():
    source = Source()
    tokens = CachedToken(source, clock=Clock())
    tokens.token()
    assert tokens.token(force_refresh=True) == "token-2"
    assert source.calls == [False, True]
    assert tokens.token() == "token-2"


def test_unknown_lifetime_is_reused_for_a_while():
    clock, source = Clock(), Source(None)
    tokens = CachedToken(source, clock=clock, unknown_lifetime=300.0, margin=60.0)
    tokens.token()
    clock.now += 239
    assert tokens.token() == "token-1"
    clock.now += 1
    assert tokens.token() == "token-2"


def test_one_fetch_for_many_threads():
    source = Source()
    tokens = CachedToken(source)
    threads = [threading.Thread(target=tokens.token) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(source.calls) == 1


def test_empty_token_is_an_auth_error():
    tokens = CachedToken(Fixed(""))
    with pytest.raises(AuthError):
        tokens.token()


# -- the token command ---------------------------------------------------------------------------


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "cmd.py"
    path.write_text(body)
    return f"{sys.executable} {path}"


def test_command_prints_a_token(tmp_path):
    fetch = command_grant(_script(tmp_path, "print()\nprint('abc.def')\n"))
    assert fetch(force=False) == Grant("abc.def", None)


def test_command_prints_json_with_lifetime(tmp_path):
    body = "import json; print(json.dumps({'access_token': 'xyz', 'expires_in': 3599}))\n"
    assert command_grant(_script(tmp_path, body))(force=False) == Grant("xyz", 3599.0)


def test_command_runs_again_for_each_refresh(tmp_path):
    counter = tmp_path / "n"
    body = (
        "from pathlib import Path\n"
        f"p = Path({str(counter)!r}); n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n)); print(f'tok{n}')\n"
    )
    tokens = CachedToken(command_grant(_script(tmp_path, body)))
    assert tokens.token() == "tok1"
    assert tokens.token(force_refresh=True) == "tok2"


def test_failing_command_says_why_without_its_output(tmp_path):
    body = "import sys; print('secret-token-on-stdout'); print('no session', file=sys.stderr); sys.exit(4)\n"
    with pytest.raises(AuthError) as caught:
        command_grant(_script(tmp_path, body))(force=False)
    assert "exited with 4: no session" in str(caught.value)
    assert "secret-token-on-stdout" not in str(caught.value)


def test_missing_command_is_a_config_error():
    with pytest.raises(ConfigError, match="not found"):
        command_grant("/nonexistent/mailferry-token-helper")(force=False)


def test_command_that_hangs_times_out(tmp_path):
    fetch = command_grant(_script(tmp_path, "import time; time.sleep(30)\n"), timeout=0.5)
    with pytest.raises(ConnectError, match="within"):
        fetch(force=False)


# -- Google service account ----------------------------------------------------------------------


@pytest.fixture
def service_key(tmp_path) -> tuple[ServiceAccountKey, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": "sa@p.iam.gserviceaccount.com",
                "private_key_id": "kid1",
                "private_key": pem,
                "token_uri": "https://oauth2.example/token",
            }
        )
    )
    return ServiceAccountKey.load(path), key


def _decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_google_grant_signs_a_delegation_assertion(service_key):
    key_file, key = service_key
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        seen.append(form)
        return httpx.Response(200, json={"access_token": "ya29.x", "expires_in": 3599})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    grant = GoogleServiceAccount(key_file, "alice@corp.example", client=client, clock=lambda: 1e9)
    assert grant(force=False) == Grant("ya29.x", 3599.0)
    form = seen[0]
    assert form["grant_type"] == JWT_BEARER
    head, body, sig = form["assertion"].split(".")
    claims = json.loads(_decode(body))
    assert claims == {
        "iss": "sa@p.iam.gserviceaccount.com",
        "sub": "alice@corp.example",
        "scope": "https://mail.google.com/",
        "aud": "https://oauth2.example/token",
        "iat": 1000000000,
        "exp": 1000003600,
    }
    assert json.loads(_decode(head))["kid"] == "kid1"
    key.public_key().verify(
        _decode(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.parametrize(
    ("status", "error"), [(400, AuthError), (401, AuthError), (503, ConnectError)]
)
def test_google_refusals(service_key, status, error):
    key_file, _ = service_key

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, json={"error": "unauthorized_client", "error_description": "no"}
        )

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(error, match=r"alice@corp\.example"):
        GoogleServiceAccount(key_file, "alice@corp.example", client=client)(force=False)


def test_google_unreachable_is_a_connect_error(service_key):
    key_file, _ = service_key

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(ConnectError, match=r"cannot reach"):
        GoogleServiceAccount(key_file, "a@b", client=client)(force=False)


def test_service_account_file_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a Google service account"):
        ServiceAccountKey.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="cannot read"):
        ServiceAccountKey.load(tmp_path / "missing.json")


def test_nothing_secret_in_reprs(service_key):
    key_file, _ = service_key
    assert "PRIVATE" not in repr(key_file)
    app = MsalAppOnly("tenant", "client", secret="s3cr3t-value")
    assert "s3cr3t" not in repr(app)
    assert "s3cr3t" not in repr(Credentials(password="s3cr3t-value"))
    tokens = CachedToken(Fixed("tok-s3cr3t"))
    tokens.token()
    creds = Credentials(tokens=tokens)
    assert "s3cr3t" not in repr(creds)
    assert "s3cr3t" not in str(creds)
    assert "s3cr3t" not in repr(Grant("tok-s3cr3t", 1))


def test_msal_needs_one_credential():
    with pytest.raises(ConfigError):
        MsalAppOnly("t", "c")
    with pytest.raises(ConfigError):
        MsalAppOnly("t", "c", secret="a", certificate=object())  # type: ignore[arg-type]


# -- choosing the mechanism and the SASL strings -------------------------------------------------

TOKENS = CachedToken(Fixed("t"))


@pytest.mark.parametrize(
    ("caps", "method", "tokens", "expected"),
    [
        ((b"AUTH=PLAIN",), AuthMethod.AUTO, None, AuthMethod.PASSWORD),
        ((b"AUTH=PLAIN", b"AUTH=XOAUTH2"), AuthMethod.AUTO, TOKENS, AuthMethod.XOAUTH2),
        ((b"AUTH=OAUTHBEARER",), AuthMethod.AUTO, TOKENS, AuthMethod.OAUTHBEARER),
        ((b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER"), AuthMethod.AUTO, TOKENS, AuthMethod.XOAUTH2),
        (
            (),
            AuthMethod.OAUTHBEARER,
            TOKENS,
            AuthMethod.OAUTHBEARER,
        ),  # asked for: not second-guessed
        ((b"AUTH=XOAUTH2",), AuthMethod.PASSWORD, None, AuthMethod.PASSWORD),
    ],
)
def test_choose_method(caps, method, tokens, expected):
    assert choose_method(Credentials(tokens=tokens, method=method), caps) is expected


def test_no_token_mechanism_offered():
    with pytest.raises(AuthError, match=r"offers AUTH=PLAIN$"):
        choose_method(Credentials(tokens=TOKENS), (b"IMAP4rev1", b"AUTH=PLAIN"))


def test_offered_logins_name_login_once():
    caps = (b"IMAP4rev1", b"AUTH=PLAIN", b"AUTH=LOGIN", b"AUTH=XOAUTH2")
    assert offered_logins(caps) == ["PLAIN", "LOGIN", "XOAUTH2"]  # SASL LOGIN and the command
    assert offered_logins((b"IMAP4rev1", b"AUTH=XOAUTH2")) == ["XOAUTH2", "LOGIN"]
    assert offered_logins((b"AUTH=XOAUTH2", b"LOGINDISABLED")) == ["XOAUTH2"]


def test_token_method_without_tokens():
    with pytest.raises(AuthError, match="needs a token source"):
        choose_method(Credentials(method=AuthMethod.XOAUTH2), (b"AUTH=XOAUTH2",))


def test_sasl_strings():
    xoauth2 = token_response(AuthMethod.XOAUTH2, "bob@contoso.com", "TOKEN")
    assert xoauth2(b"") == b"user=bob@contoso.com\x01auth=Bearer TOKEN\x01\x01"
    assert xoauth2(b'{"status":"401","schemes":"bearer"}') == b""  # ends a refused exchange
    assert xoauth2.refusal == ", token refused with status 401"
    bearer = token_response(AuthMethod.OAUTHBEARER, "a,b=c@x", "TOKEN")
    assert bearer(b"") == b"n,a=a=2Cb=3Dc@x,\x01auth=Bearer TOKEN\x01\x01"
    assert bearer(b'{"status":"invalid_token"}') == b"\x01"
    assert "TOKEN" not in repr(bearer)
