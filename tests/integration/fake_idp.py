"""A FAKE IDENTITY PROVIDER for tests: a tiny OAuth2 token service on 127.0.0.1.

It stands in for Microsoft Entra ID (``login.microsoftonline.com``) and Google's token endpoint, so
that the real client code (msal, our JWT-bearer grant, the token command) and a real Dovecot with its
``oauth2`` passdb can be exercised offline. It is not an identity provider anyone should use.

Two listeners share one token table:
- HTTPS (self-signed certificate for 127.0.0.1): OpenID discovery for msal, the token endpoint
  (client credentials with a secret or a signed client assertion, Google's JWT-bearer grant).
- HTTP: the introspection endpoint Dovecot calls (``POST token=...``), answering RFC 7662 style
  ``{"active": true, "username": ...}``. App-only tokens (Microsoft's IMAP.AccessAsApp) answer with
  the mailbox the app was granted (see ``mailbox_permissions``).

Tokens expire after ``lifetime`` seconds; ``revoke_all()`` makes every issued token invalid at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HOST = "127.0.0.1"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Issued:
    subject: str | None  # None: an app-only token, valid for any mailbox
    expires: float
    client: str


@dataclass
class Counters:
    issued: int = 0
    introspected: int = 0
    rejected: int = 0  # introspections answered inactive (expired, revoked, unknown)
    discovery: int = 0
    grants: list[str] = field(default_factory=list)


class FakeIdentityProvider:
    def __init__(self, root: Path, *, lifetime: float = 3.0) -> None:
        self.root = root
        self.lifetime = lifetime
        self.tenant = "contoso-tenant"
        self.clients: dict[str, str] = {}  # client id -> secret
        self.users: dict[str, str] = {}  # user -> password (resource owner password grant)
        self.client_keys: dict[str, rsa.RSAPublicKey] = {}  # client id -> certificate key
        self.service_accounts: dict[str, rsa.RSAPublicKey] = {}  # client_email -> key
        # client id -> the mailbox its app-only tokens may open (Add-MailboxPermission). Exchange
        # takes the mailbox from the SASL string; Dovecot 2.3 does not pass the login name to the
        # introspection endpoint, so here an app is granted one mailbox and that is the username.
        self.mailbox_permissions: dict[str, str] = {}
        self.tokens: dict[str, Issued] = {}
        self.counters = Counters()
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self.ca_file = root / "idp-cert.pem"

    # -- set-up ----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root / "idp-key.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-nodes", "-days", "2", "-newkey", "rsa:2048",
                "-keyout", str(key), "-out", str(self.ca_file), "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key)
        self._https = self._serve(context)
        self._http = self._serve(None)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _serve(self, context: ssl.SSLContext | None) -> ThreadingHTTPServer:
        idp = self

        class Handler(_Handler):
            provider = idp

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return server

    @property
    def authority(self) -> str:
        """What msal takes as ``authority`` (Entra's is https://login.microsoftonline.com/TENANT)."""
        return f"https://{HOST}:{self._https.server_address[1]}/{self.tenant}"

    @property
    def token_url(self) -> str:
        return f"https://{HOST}:{self._https.server_address[1]}/token"

    @property
    def introspection_url(self) -> str:
        return f"http://{HOST}:{self._http.server_address[1]}/introspect"

    def add_client(self, client_id: str, secret: str) -> None:
        self.clients[client_id] = secret

    def add_client_certificate(self, client_id: str, key: rsa.RSAPublicKey) -> None:
        self.client_keys[client_id] = key

    def add_service_account(self, email: str, key: rsa.RSAPublicKey) -> None:
        self.service_accounts[email] = key

    # -- tokens ----------------------------------------------------------------------------------
    def issue(self, subject: str | None, client: str) -> dict[str, Any]:
        token = "fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = Issued(subject, time.time() + self.lifetime, client)
            self.counters.issued += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    def revoke_all(self) -> None:
        with self._lock:
            self.tokens.clear()

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            self.counters.introspected += 1
            issued = self.tokens.get(token)
            if issued is None or issued.expires <= time.time():
                self.counters.rejected += 1
                return {"active": False}
            subject = issued.subject or self.mailbox_permissions.get(issued.client)
        return {"active": True, "username": subject, "client_id": issued.client}

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:  # noqa: PLR0911
        kind = form.get("grant_type", "")
        self.counters.grants.append(kind)
        if kind == "client_credentials":
            client = form.get("client_id", "")
            if form.get("client_assertion_type") == ASSERTION_TYPE:
                key = self.client_keys.get(client)
                claims = _verify_jwt(form.get("client_assertion", ""), key)
                if claims is None or claims.get("sub") != client:
                    return 401, {"error": "invalid_client", "error_description": "bad assertion"}
            elif self.clients.get(client) != form.get("client_secret") or not client:
                return 401, {"error": "invalid_client", "error_description": "AADSTS7000215"}
            return 200, self.issue(None, client)
        if kind == "password":  # a user's own token (what a token command would obtain)
            user = form.get("username", "")
            if not user or self.users.get(user) != form.get("password"):
                return 400, {"error": "invalid_grant", "error_description": "AADSTS50126"}
            return 200, self.issue(user, form.get("client_id", "cli"))
        if kind == JWT_BEARER:
            claims = _verify_jwt(form.get("assertion", ""), None, self.service_accounts)
            if claims is None or "sub" not in claims:
                return 400, {"error": "invalid_grant", "error_description": "bad assertion"}
            return 200, self.issue(str(claims["sub"]), str(claims["iss"]))
        return 400, {"error": "unsupported_grant_type"}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verify_jwt(
    token: str,
    key: rsa.RSAPublicKey | None,
    by_issuer: dict[str, rsa.RSAPublicKey] | None = None,
) -> dict[str, Any] | None:
    try:
        head, body, sig = token.split(".")
        claims: dict[str, Any] = json.loads(_b64decode(body))
        if by_issuer is not None:
            key = by_issuer.get(str(claims.get("iss")))
        if key is None or claims.get("exp", 0) < time.time():
            return None
        header = json.loads(_b64decode(head))
        if header.get("alg") == "PS256":
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256().digest_size
            )
        else:
            pad = padding.PKCS1v15()
        key.verify(_b64decode(sig), f"{head}.{body}".encode(), pad, hashes.SHA256())
    except Exception:
        return None
    return claims


class _Handler(BaseHTTPRequestHandler):
    provider: FakeIdentityProvider

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return

    def _answer(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        idp = self.provider
        if url.path.endswith("/.well-known/openid-configuration"):
            idp.counters.discovery += 1
            base = idp.authority
            self._answer(
                200,
                {
                    "issuer": base + "/v2.0",
                    "authorization_endpoint": base + "/oauth2/v2.0/authorize",
                    "token_endpoint": base + "/oauth2/v2.0/token",
                    "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
                },
            )
            return
        self._answer(404, {"error": "not_found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        form = self._form()
        if url.path == "/introspect":
            self._answer(200, self.provider.introspect(form.get("token", "")))
            return
        if url.path.endswith("/token"):
            status, data = self.provider.grant(form)
            self._answer(status, data)
            return
        self._answer(404, {"error": "not_found"})


def rsa_key_pem(path: Path) -> rsa.RSAPrivateKey:
    """A fresh RSA key, written to ``path`` as PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key


def self_signed_certificate(key: rsa.RSAPrivateKey) -> bytes:
    """A self-signed certificate for ``key`` (what an admin uploads to the app registration)."""
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "mailferry-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
