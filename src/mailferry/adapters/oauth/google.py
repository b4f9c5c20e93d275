"""Google Workspace tokens: a signed JWT-bearer grant (RFC 7523) with domain-wide delegation; the
token impersonates one mailbox."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailferry.domain.errors import AuthError, ConfigError, ConnectError

if TYPE_CHECKING:  # httpx is imported where used: it costs 40 ms at every start of the CLI
    import httpx

from mailferry.adapters.oauth.tokens import Grant, grant_from_json

GOOGLE_MAIL_SCOPE = "https://mail.google.com/"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


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
