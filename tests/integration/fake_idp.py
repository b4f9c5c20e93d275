"""A FAKE IDENTITY PROVIDER for tests: a tiny OAuth2 token service on 127.0.0.1.

It stands in for Microsoft Entra ID (``login.microsoftonline.com``) and Google's token endpoint, so
that the real client code (msal, our JWT-bearer grant, the token command) and a real Dovecot with its
``oauth2`` passdb can be exercised offline. It is not an identity provider anyone should use.

Two listeners share one token table:
- HTTPS (self-signed certificate for 127.0.0.1): OpenID discovery for msal (for whatever tenant the
  path names, as Entra answers for ``organizations``), the token endpoint (client credentials with a
  secret or a signed client assertion, Google's JWT-bearer grant, the device code grant, the refresh
  token grant) and the device authorization endpoint (RFC 8628).
- HTTP: the introspection endpoint Dovecot calls (``POST token=...``), answering RFC 7662 style
  ``{"active": true, "username": ...}``. App-only tokens (Microsoft's IMAP.AccessAsApp) answer with
  the mailbox the app was granted (see ``mailbox_permissions``).

Tokens expire after ``lifetime`` seconds; ``revoke_all()`` makes every issued token invalid at once.

Delegated sign-ins (public clients, ``add_public_client``): msal asks for a device code; the test plays
the user and approves it (``approve(user_code, username)``); until then the token endpoint answers
``authorization_pending``. The answer carries what msal needs to cache an account (an unsigned
``id_token`` with ``oid``/``tid``/``preferred_username`` and ``client_info``) and, when the scopes
include ``offline_access``, a refresh token. Refresh tokens rotate (the old ones stay valid, as
Entra's do, until ``revoke_sign_ins(user)``, Entra's "revoke sessions").
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
import uuid
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
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
RESERVED_SCOPES = {"openid", "profile", "offline_access"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Issued:
    subject: str | None  # None: an app-only token, valid for any mailbox
    expires: float
    client: str


@dataclass
class DeviceCode:
    user_code: str
    client: str
    scopes: set[str]
    expires: float
    approved_as: str | None = None  # the account the user signed in with


@dataclass
class RefreshGrant:
    user: str
    client: str
    scopes: set[str]
    revoked: bool = False


@dataclass
class Counters:
    issued: int = 0
    introspected: int = 0
    rejected: int = 0  # introspections answered inactive (expired, revoked, unknown)
    discovery: int = 0
    device_authorizations: int = 0  # device codes handed out (sign-ins started)
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
        self.public_clients: set[str] = set()  # "Allow public client flows": device code sign-ins
        self.device_codes: dict[str, DeviceCode] = {}  # device code -> its state
        self.refresh_tokens: dict[str, RefreshGrant] = {}  # every one issued, revoked ones too
        self.device_interval = 1  # seconds between polls (Entra says 5)
        self.counters = Counters()
        # Microsoft Graph: a FAKE Graph whose tokens the client credentials grant hands out for
        # a scope on its URL, with the application permissions consented to each client
        self.graph: Any = None  # a sandbox.graph.server.FakeGraph
        self.app_roles: dict[str, list[str]] = {}
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

    def add_public_client(self, client_id: str) -> None:
        self.public_clients.add(client_id)

    # -- delegated sign-ins (device code flow) ---------------------------------------------------
    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        client = form.get("client_id", "")
        if client not in self.public_clients:
            return 400, {
                "error": "unauthorized_client",
                "error_description": f"AADSTS7000218: {client!r} is not a public client app",
            }
        device_code = "fake-dc-" + secrets.token_urlsafe(24)
        user_code = secrets.token_hex(4).upper()
        with self._lock:
            self.device_codes[device_code] = DeviceCode(
                user_code, client, set(form.get("scope", "").split()), time.time() + 900
            )
            self.counters.device_authorizations += 1
        uri = f"https://{HOST}:{self._https.server_address[1]}/devicelogin"
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "expires_in": 900,
            "interval": self.device_interval,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the "
            f"code {user_code} to authenticate.",
        }

    def pending_user_codes(self) -> list[str]:
        with self._lock:
            return [d.user_code for d in self.device_codes.values() if d.approved_as is None]

    def approve(self, user_code: str, username: str) -> None:
        """The user opened the verification page, entered the code and signed in as ``username``."""
        with self._lock:
            for pending in self.device_codes.values():
                if pending.user_code == user_code and pending.approved_as is None:
                    pending.approved_as = username
                    return
        raise KeyError(user_code)

    def revoke_sign_ins(self, user: str) -> None:
        """Entra's "revoke sessions": every refresh token of ``user`` is refused from now on."""
        with self._lock:
            for grant in self.refresh_tokens.values():
                if grant.user == user:
                    grant.revoked = True

    def _device_code_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            pending = self.device_codes.get(form.get("device_code", ""))
            if pending is None or pending.expires <= time.time():
                return 400, {"error": "expired_token", "error_description": "AADSTS70020"}
            if pending.client != form.get("client_id"):
                return 400, {"error": "invalid_grant", "error_description": "AADSTS70000"}
            if pending.approved_as is None:
                return 400, {
                    "error": "authorization_pending",
                    "error_description": "AADSTS70016: OAuth 2.0 device flow error. "
                    "Authorization is pending. Continue polling.",
                }
            del self.device_codes[form["device_code"]]
        return 200, self._user_tokens(pending.approved_as, pending.client, pending.scopes)

    def _refresh_grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None or grant.revoked or grant.client != form.get("client_id"):
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "AADSTS50173: The provided grant has expired due to it "
                    "being revoked, a fresh auth token is needed.\r\nTrace ID: fake",
                }
        return 200, self._user_tokens(grant.user, grant.client, grant.scopes)

    def _user_tokens(self, user: str, client: str, scopes: set[str]) -> dict[str, Any]:
        """A user's access token (and, with offline_access, a new refresh token), as Entra answers."""
        answer = self.issue(user, client)
        answer["scope"] = " ".join(sorted(scopes - RESERVED_SCOPES))
        answer["ext_expires_in"] = self.lifetime
        oid, tid = str(uuid.uuid5(uuid.NAMESPACE_URL, user)), self.tenant_id
        answer["client_info"] = _b64encode(json.dumps({"uid": oid, "utid": tid}).encode())
        now = int(time.time())
        claims = {
            "aud": client, "iss": f"https://{HOST}/{tid}/v2.0", "iat": now, "nbf": now,
            "exp": now + 3600, "name": user, "oid": oid, "preferred_username": user,
            "sub": oid, "tid": tid, "ver": "2.0",
        }  # fmt: skip
        header = {"alg": "RS256", "typ": "JWT", "kid": "fake"}
        answer["id_token"] = (
            ".".join(_b64encode(json.dumps(part).encode()) for part in (header, claims))
            + "."
            + _b64encode(b"not-signed")
        )
        if "offline_access" in scopes:
            refresh = "fake-rt-" + secrets.token_urlsafe(32)
            with self._lock:
                self.refresh_tokens[refresh] = RefreshGrant(user, client, scopes)
            answer["refresh_token"] = refresh
        return answer

    @property
    def tenant_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self.tenant))

    # -- tokens ----------------------------------------------------------------------------------
    def issue(self, subject: str | None, client: str) -> dict[str, Any]:
        token = "fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = Issued(subject, time.time() + self.lifetime, client)
            self.counters.issued += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    def expiries(self, earlier: set[str], *, user: str | None = None, app: str = "") -> list[float]:
        """When each access token issued since ``earlier`` (the tokens there were then) expires:
        ``user``'s delegated ones, or with ``app`` the app-only ones of that client."""
        with self._lock:
            issued = [i for t, i in self.tokens.items() if t not in earlier]
        if app:
            return [i.expires for i in issued if i.subject is None and i.client == app]
        return [i.expires for i in issued if user is not None and i.subject == user]

    def _graph_token(self, client: str) -> dict[str, Any]:
        """An app-only Graph token (a JWT with ``roles``, as Entra issues for Graph's scope)."""
        with self._lock:
            self.counters.issued += 1
        token = self.graph.issue_token(client, self.app_roles.get(client, []), self.lifetime)
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
            if self.graph is not None and form.get("scope", "").startswith(self.graph.url):
                return 200, self._graph_token(client)
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
        if kind == DEVICE_CODE:
            return self._device_code_grant(form)
        if kind == "refresh_token":
            return self._refresh_grant(form)
        return 400, {"error": "unsupported_grant_type"}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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
            tenant = url.path.strip("/").split("/")[0]  # Entra answers for the tenant asked about
            base = f"https://{HOST}:{idp._https.server_address[1]}/{tenant}"
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
        if url.path.endswith("/devicecode"):
            self._answer(*self.provider.device_authorization(form))
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
