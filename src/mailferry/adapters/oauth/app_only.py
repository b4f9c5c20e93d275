"""Microsoft 365 app-only tokens (client credentials with a secret or a certificate) through msal: one
token serves every mailbox of the tenant (the mailbox goes in the SASL string)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailferry.adapters.oauth.tokens import Grant, grant_from_json
from mailferry.domain.errors import AuthError, ConfigError, ConnectError

M365_SCOPE = "https://outlook.office365.com/.default"
M365_AUTHORITY_HOST = "https://login.microsoftonline.com"
GRAPH_URL = "https://graph.microsoft.com"  # national clouds: docs/microsoft365.md


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
        # cryptography's x509 takes ~40 ms to import: only a certificate login pays it
        from cryptography import x509  # noqa: PLC0415
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

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
