"""OAuth2 access tokens for SASL XOAUTH2 / OAUTHBEARER logins, from several kinds of source.

Every source sits behind one port, ``TokenProvider.token(force_refresh=False) -> str``. ``CachedToken``
implements it over a *grant* (one round trip to an identity provider, or one run of a command): it keeps
the token until shortly before it expires, fetches one at a time for every thread (a run's lanes share
it), and fetches anew when asked to (``force_refresh``: the server refused the token it had).

Grants:
- ``command_grant``: an external command prints the token (or ``{"access_token", "expires_in"}`` JSON).
- ``MsalAppOnly``: Microsoft 365 app-only (client credentials with a secret or a certificate) via msal;
  one token serves every mailbox of the tenant (the mailbox goes in the SASL string).
- ``GoogleServiceAccount``: a signed JWT-bearer grant (RFC 7523) with domain-wide delegation: the
  token impersonates one mailbox.
- ``oauth_delegated.MsalDelegated``: Microsoft 365 delegated: one user's own sign-in (device code),
  stored encrypted; its refresh token makes that user's tokens.

Errors: an identity provider that cannot be reached is a ``ConnectError`` (the run retries it like a
dropped connection); one that refuses is an ``AuthError``. Neither a secret nor a token ever appears in
a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailferry.domain.errors import AuthError, ConfigError, ConnectError

if TYPE_CHECKING:  # httpx is imported where used: it costs 40 ms at every start of the CLI
    import httpx

    from mailferry.adapters.oauth_delegated import SignInOptions

M365_SCOPE = "https://outlook.office365.com/.default"
M365_AUTHORITY_HOST = "https://login.microsoftonline.com"
GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
UNKNOWN_LIFETIME = 300.0  # seconds a token of unknown lifetime is reused (a refusal refreshes it)
REFRESH_MARGIN = 300.0  # refresh this long before expiry (at most half the token's lifetime)
COMMAND_TIMEOUT = 60.0


class TokenProvider(Protocol):
    def token(self, force_refresh: bool = False) -> str:
        """A valid access token; ``force_refresh`` skips the cache (the server refused the last)."""
        ...


@dataclass(frozen=True)
class Grant:
    """What one round trip to an identity provider returned."""

    access_token: str = field(repr=False)
    expires_in: float | None = None  # seconds; None when the source does not say


class GrantSource(Protocol):
    def __call__(self, force: bool) -> Grant:
        """Fetch a new token; ``force`` asks to bypass any cache the source keeps itself."""
        ...


class CachedToken:
    """A ``TokenProvider`` over a grant source: see the module docstring."""

    def __init__(
        self,
        fetch: GrantSource,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = REFRESH_MARGIN,
        unknown_lifetime: float = UNKNOWN_LIFETIME,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._margin = margin
        self._unknown_lifetime = unknown_lifetime
        self._lock = threading.Lock()
        self._value: str | None = None
        self._refresh_at = 0.0
        self.fetches = 0  # how many grants were made (tests, diagnostics)

    def __repr__(self) -> str:
        return f"CachedToken(fetches={self.fetches})"

    def token(self, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh or self._value is None or self._clock() >= self._refresh_at:
                started = self._clock()
                grant = self._fetch(force=force_refresh)
                if not grant.access_token:
                    raise AuthError("the token source returned an empty token")
                lifetime = grant.expires_in
                if lifetime is None:
                    lifetime = self._unknown_lifetime
                self._value = grant.access_token
                self._refresh_at = started + lifetime - min(self._margin, lifetime / 2)
                self.fetches += 1
            return self._value


# -- an external command -------------------------------------------------------------------------


def command_grant(command: str, *, timeout: float = COMMAND_TIMEOUT) -> GrantSource:
    """Run ``command`` (split like a shell would, but run without one) and read the token it prints.

    Its stdout is either the token (first non-empty line) or JSON ``{"access_token": ...,
    "expires_in": seconds}``. It is run again for every refresh.
    """
    argv = shlex_split(command)

    def fetch(force: bool) -> Grant:  # noqa: ARG001 - the command has no cache of ours to skip
        try:
            done = subprocess.run(  # the user's own command, without a shell
                argv, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise ConfigError(f"token command {argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise ConnectError(
                f"token command {argv[0]!r} gave no token within {timeout:g}s"
            ) from None
        except OSError as exc:
            raise ConfigError(f"token command {argv[0]!r} cannot run: {exc.strerror}") from None
        if done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = f": {said[-1][:200]}" if said else ""
            raise AuthError(f"token command {argv[0]!r} exited with {done.returncode}{detail}")
        return _parse_command_output(done.stdout.decode("utf-8", "replace"))

    return fetch


def _parse_command_output(text: str) -> Grant:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            raise AuthError("the token command printed JSON that does not parse") from None
        return grant_from_json(data, "the token command")
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if not lines:
        raise AuthError("the token command printed no token")
    return Grant(lines[0])


def grant_from_json(data: Any, who: str) -> Grant:
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        raise AuthError(f"{who} answered without an access_token")
    expires = data.get("expires_in")
    try:
        lifetime = float(expires) if expires is not None else None
    except (TypeError, ValueError):
        lifetime = None
    return Grant(data["access_token"], lifetime)


# -- Microsoft 365 app-only (msal) ---------------------------------------------------------------


@dataclass(frozen=True)
class ClientCertificate:
    """A certificate uploaded to the app registration and its private key (one PEM file or two)."""

    private_key_pem: str = field(repr=False)
    thumbprint: str  # SHA-1 of the DER certificate, hex (what msal and Entra ID call it)
    public_certificate: str = field(repr=False)

    @classmethod
    def load(cls, path: Path, password: bytes | None = None) -> ClientCertificate:
        """A PEM file holding the private key and the certificate."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read certificate file {path}: {exc.strerror}") from None
        return cls.parse(data, str(path), password)

    @classmethod
    def parse(cls, data: bytes, where: str, password: bytes | None = None) -> ClientCertificate:
        """PEM text holding the private key and the certificate (``where`` names it in errors)."""
        path = where
        try:
            key = serialization.load_pem_private_key(data, password=password)
            cert = x509.load_pem_x509_certificate(data)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{path}: expected a PEM file with the private key and the certificate"
            ) from None
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        der = cert.public_bytes(serialization.Encoding.DER)
        thumbprint = hashlib.sha1(der, usedforsecurity=False).hexdigest()
        return cls(key_pem, thumbprint, cert.public_bytes(serialization.Encoding.PEM).decode())


class MsalAppOnly:
    """Client credentials for ``https://outlook.office365.com/.default`` through msal.

    The msal application is made on first use (it fetches the tenant's OpenID configuration). msal
    keeps its own token cache; a forced refresh empties it first.
    """

    def __init__(
        self,
        tenant: str,
        client_id: str,
        *,
        secret: str | None = None,
        certificate: ClientCertificate | None = None,
        authority_host: str = M365_AUTHORITY_HOST,
        scope: str = M365_SCOPE,
        ca_file: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        if (secret is None) == (certificate is None):
            raise ConfigError("Microsoft 365 app-only: give a client secret or a certificate")
        self.tenant = tenant
        self.client_id = client_id
        self._credential: str | dict[str, str] = (
            secret
            if secret is not None
            else {
                "private_key": certificate.private_key_pem,  # type: ignore[union-attr]
                "thumbprint": certificate.thumbprint,  # type: ignore[union-attr]
                "public_certificate": certificate.public_certificate,  # type: ignore[union-attr]
            }
        )
        self.authority = f"{authority_host.rstrip('/')}/{tenant}"
        self.scope = scope
        self._ca_file = ca_file
        self._timeout = timeout
        self._app: Any = None

    def __repr__(self) -> str:
        return f"MsalAppOnly(tenant={self.tenant!r}, client_id={self.client_id!r})"

    def _application(self) -> Any:
        import msal  # noqa: PLC0415 - imported where used: msal pulls in requests and PyJWT

        if self._app is None:
            self._app = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self._credential,
                **msal_settings(self.authority, self._ca_file, self._timeout),
            )
        return self._app

    def __call__(self, force: bool) -> Grant:
        import requests  # noqa: PLC0415 - msal's transport; only its errors are needed here

        who = f"Microsoft 365 token for app {self.client_id} in tenant {self.tenant}"
        try:
            app = self._application()
            if force:
                cache = app.token_cache
                for item in cache.search(cache.CredentialType.ACCESS_TOKEN):
                    cache.remove_at(item)
            result = app.acquire_token_for_client(scopes=[self.scope])
        except requests.RequestException as exc:
            raise ConnectError(
                f"{who}: cannot reach {self.authority}: {type(exc).__name__}"
            ) from None
        except ValueError as exc:  # msal: the authority's OpenID configuration is unusable
            raise AuthError(f"{who}: {str(exc).splitlines()[0][:200]}") from None
        if not isinstance(result, dict) or "access_token" not in result:
            raise AuthError(f"{who}: {msal_refusal(result)}")
        return grant_from_json(result, who)


def msal_refusal(result: object) -> str:
    """msal's answer without a token, in one line: ``error (first line of its description)``."""
    if not isinstance(result, dict):
        return "no token"
    error = str(result.get("error", "no token"))
    text = str(result.get("error_description", "")).strip()
    first = text.splitlines()[0][:200] if text else ""
    return error + (f" ({first})" if first else "")


def msal_settings(authority: str, ca_file: Path | None, timeout: float) -> dict[str, Any]:
    """What every msal application of ours is made with: Entra ID's authority is validated and
    discovered, any other (a national cloud's proxy, the tests' identity provider) taken as given."""
    known = authority.startswith(M365_AUTHORITY_HOST)
    return {
        "authority": authority,
        "validate_authority": known,
        "instance_discovery": known,
        "http_client": msal_http_client(ca_file, timeout),
        "timeout": timeout,
    }


def msal_http_client(ca_file: Path | None, timeout: float) -> Any:
    """msal's transport: None (msal's own) unless a CA file is given. requests lets
    REQUESTS_CA_BUNDLE override a session's ``verify``, so the CA goes with every request instead."""
    if ca_file is None:
        return None
    import requests  # noqa: PLC0415 - msal's transport

    session = requests.Session()
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, verify=str(ca_file), timeout=timeout
    )
    return session


# -- Google service account ----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccountKey:
    """The JSON key file of a Google service account (the fields a JWT-bearer grant needs)."""

    client_email: str
    token_uri: str
    private_key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def load(cls, path: Path) -> ServiceAccountKey:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read service account file {path}: {exc.strerror}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, where: str) -> ServiceAccountKey:
        """The key file's JSON text (``where`` names it in errors)."""
        path = where
        try:
            data = json.loads(text)
            key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
            raise ConfigError(f"{path}: not a Google service account key file (JSON)") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{path}: the service account key is not an RSA key")
        return cls(
            str(data["client_email"]),
            str(data.get("token_uri") or "https://oauth2.googleapis.com/token"),
            str(data.get("private_key_id", "")),
            key,
        )


class GoogleServiceAccount:
    """A token for ``subject`` (the mailbox) through domain-wide delegation (RFC 7523 JWT bearer)."""

    def __init__(
        self,
        key: ServiceAccountKey,
        subject: str,
        *,
        scope: str = GOOGLE_MAIL_SCOPE,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.subject = subject
        self.scope = scope
        if client is None:
            import httpx  # noqa: PLC0415 - see the TYPE_CHECKING import above

            client = httpx.Client(timeout=30.0)
        self._client = client
        self._clock = clock

    def __repr__(self) -> str:
        return f"GoogleServiceAccount({self.key.client_email!r}, subject={self.subject!r})"

    def assertion(self) -> str:
        now = int(self._clock())
        header = {"alg": "RS256", "typ": "JWT", "kid": self.key.private_key_id}
        claims = {
            "iss": self.key.client_email,
            "sub": self.subject,
            "scope": self.scope,
            "aud": self.key.token_uri,
            "iat": now,
            "exp": now + 3600,
        }
        signing_input = f"{_b64json(header)}.{_b64json(claims)}"
        signature = self.key.private_key.sign(
            signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
        return f"{signing_input}.{_b64(signature)}"

    def __call__(self, force: bool) -> Grant:  # noqa: ARG002 - every call is a new grant
        who = f"Google token for {self.subject} (service account {self.key.client_email})"
        form = {"grant_type": JWT_BEARER, "assertion": self.assertion()}
        import httpx  # noqa: PLC0415 - see the TYPE_CHECKING import above

        try:
            response = self._client.post(self.key.token_uri, data=form)
        except httpx.HTTPError as exc:
            raise ConnectError(
                f"{who}: cannot reach {self.key.token_uri}: {type(exc).__name__}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200:
            error = (
                data.get("error", f"HTTP {response.status_code}") if isinstance(data, dict) else ""
            )
            detail = str(data.get("error_description", ""))[:200] if isinstance(data, dict) else ""
            if response.status_code >= 500 or response.status_code == 429:
                raise ConnectError(f"{who}: {error}" + (f" ({detail})" if detail else ""))
            raise AuthError(f"{who}: {error}" + (f" ({detail})" if detail else ""))
        return grant_from_json(data, who)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64json(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data, separators=(",", ":")).encode())


# -- a token source as settings (an endpoint's, stored or from the command line) -----------------


@dataclass(frozen=True)
class SourceNames:
    """What a token source's settings are called where they were given, so that its problems name
    them: the command line's options (``options``), the web form's fields, the API's keys."""

    command: str
    m365: str  # the Microsoft 365 app-only source as a whole
    m365_tenant: str
    m365_client_id: str
    m365_client_secret: str
    m365_certificate: str
    google_service_account: str
    m365_delegated: str = "a Microsoft 365 delegated sign-in"  # `mailferry login`: CLI only

    @classmethod
    def options(cls, prefix: str = "--") -> SourceNames:
        """The command line's options (``prefix`` is ``--`` or ``--source-``)."""
        return cls(
            command=f"{prefix}oauth-token-command",
            m365=f"{prefix}m365-tenant/{prefix}m365-client-id",
            m365_tenant=f"{prefix}m365-tenant",
            m365_client_id=f"{prefix}m365-client-id",
            m365_client_secret=f"{prefix}m365-client-secret-file",
            m365_certificate=f"{prefix}m365-certificate-file",
            google_service_account=f"{prefix}google-service-account-file",
            m365_delegated=f"{prefix}m365-delegated",
        )


OPTIONS = SourceNames.options()


@dataclass(frozen=True)
class TokenSource:
    """Where one endpoint's tokens come from, its secrets loaded as text (never printed).

    ``mailferry sync`` reads it from the ``--source-…`` options' files; the migration service keeps
    it with the endpoint (the secrets encrypted). ``token_provider`` turns it into a provider.
    """

    command: str | None = None
    m365_tenant: str | None = None
    m365_client_id: str | None = None
    m365_client_secret: str | None = field(default=None, repr=False)
    m365_certificate_pem: str | None = field(default=None, repr=False)
    m365_authority: str = M365_AUTHORITY_HOST
    google_service_account_json: str | None = field(default=None, repr=False)
    m365_delegated: bool = False  # one user's own sign-in (device code): see oauth_delegated

    def kinds(self, names: SourceNames = OPTIONS) -> list[str]:
        """The sources given, as ``names`` calls them."""
        found = []
        if self.command:
            found.append(names.command)
        if self.m365_delegated:
            found.append(names.m365_delegated)
        elif self.m365_tenant or self.m365_client_id:
            found.append(names.m365)
        if self.google_service_account_json is not None:
            found.append(names.google_service_account)
        return found

    @property
    def per_mailbox(self) -> bool:
        """True when a token acts for one mailbox only (Google's delegation names the subject, a
        delegated Microsoft 365 token is the user's own); otherwise one provider (an app token, a
        command) serves every mailbox of the endpoint."""
        return self.google_service_account_json is not None or self.m365_delegated

    def check(self, names: SourceNames = OPTIONS) -> None:
        """Raise ConfigError with every problem: one source, complete, its keys parse."""
        sources = self.kinds(names)
        if len(sources) > 1:
            raise ConfigError(f"give one token source, not {' and '.join(sources)}")
        if self.command is not None:
            shlex_split(self.command)
        if self.google_service_account_json is not None:
            ServiceAccountKey.parse(self.google_service_account_json, names.google_service_account)
        if self.m365_delegated:
            from mailferry.adapters import oauth_delegated  # noqa: PLC0415 - it imports this one

            if problems := oauth_delegated.delegated_problems(self, names):
                raise ConfigError(problems)
        elif self.m365_tenant or self.m365_client_id:
            self._m365(names)

    def _m365(self, names: SourceNames) -> MsalAppOnly:
        problems = []
        if not self.m365_tenant:
            problems.append(f"{names.m365_tenant} is missing (the directory/tenant id)")
        if not self.m365_client_id:
            problems.append(f"{names.m365_client_id} is missing (the application/client id)")
        if (self.m365_client_secret is None) == (self.m365_certificate_pem is None):
            problems.append(f"give one of {names.m365_client_secret} and {names.m365_certificate}")
        if problems:
            raise ConfigError(problems)
        assert self.m365_tenant  # noqa: S101 - checked above
        assert self.m365_client_id  # noqa: S101 - checked above
        certificate = None
        if self.m365_certificate_pem is not None:
            certificate = ClientCertificate.parse(
                self.m365_certificate_pem.encode("utf-8"), names.m365_certificate
            )
        return MsalAppOnly(
            self.m365_tenant,
            self.m365_client_id,
            secret=self.m365_client_secret,
            certificate=certificate,
            authority_host=self.m365_authority,
        )


def shlex_split(command: str) -> list[str]:
    """The token command's argv; an empty or badly quoted command is a ConfigError."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"the token command does not parse: {exc}") from None
    if not argv:
        raise ConfigError("the token command is empty")
    return argv


def token_provider(
    source: TokenSource,
    subject: str,
    names: SourceNames = OPTIONS,
    sign_in: SignInOptions | None = None,
) -> TokenProvider | None:
    """A cached provider over the source (None if it names none). ``subject`` is the mailbox a
    Google or delegated token acts for; the other sources' tokens do not depend on it. ``sign_in``:
    where a delegated source finds its sign-in (see ``oauth_delegated.SignInOptions``)."""
    source.check(names)
    if source.m365_delegated:
        from mailferry.adapters.oauth_delegated import delegated_grant  # noqa: PLC0415 - see check

        return CachedToken(delegated_grant(source, subject, sign_in))
    if source.command:
        return CachedToken(command_grant(source.command))
    if source.google_service_account_json is not None:
        key = ServiceAccountKey.parse(
            source.google_service_account_json, names.google_service_account
        )
        return CachedToken(GoogleServiceAccount(key, subject))
    if source.kinds(names):
        return CachedToken(source._m365(names))
    return None
