"""Microsoft 365 delegated tokens: one user signs in with their own account (the OAuth2 device
authorization grant, RFC 8628) and mailferry keeps the sign-in to fetch that user's IMAP tokens.

msal's ``PublicClientApplication`` speaks the protocol; its ``SerializableTokenCache`` (the account,
its refresh token, the latest access token) is what is kept:

- ``SignInStore``: one file per sign-in, ``tokens/<sha256 of authority|client id|user>.fernet`` in
  the data directory (beside the state database). The whole serialized cache is encrypted with the
  key ring of ``adapters/secrets.py``; the file is 0600 in a 0700 directory, replaced atomically
  (temporary file, fsync, ``os.replace``) whenever msal changed the cache.
- ``MsalDelegated``: the grant source (``oauth.GrantSource``). ``acquire_token_silent`` for the
  stored account: a new access token from the refresh token when the last one is (nearly) expired.
  ``sign_in`` runs the device flow: msal's message (the verification URL and the user code) is
  shown, the flow waits for the user, the cache is stored.
- ``SignInOptions`` (signin.py, which every run loads, without this module's ``cryptography``): what a caller adds to the settings: the state database whose directory holds
  the sign-ins, the mailbox URL that the sign-in instruction names, and, in interactive runs only,
  where to show a device-flow message (then a missing or refused sign-in is made inline, once, before
  the first token; never in the middle of a run).

No stored sign-in, or a refused one (revoked, expired, consent withdrawn): an ``AuthError`` whose one
line names the ``mailferry login`` command to run. An identity provider that cannot be reached: a
``ConnectError``. No token or refresh token is ever printed, logged or put in a repr.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST, msal_refusal, msal_settings
from mailferry.adapters.oauth.signin import Show, SignInOptions
from mailferry.adapters.oauth.tokens import Grant, grant_from_json
from mailferry.adapters.secrets import KEY_ENV, KEY_FILE, Secret, SecretBox
from mailferry.config import STATE_ENV, data_dir, default_state_path
from mailferry.domain.errors import AuthError, ConfigError, ConnectError

M365_DELEGATED_SCOPE = "https://outlook.office365.com/IMAP.AccessAsUser.All"
DEFAULT_TENANT = "organizations"  # any work or school account; a tenant id pins one directory
TOKENS_DIR = "tokens"
SUFFIX = ".fernet"


@dataclass(frozen=True)
class SignInKey:
    """Which sign-in: the authority (host and tenant), the public client app, the user."""

    authority: str
    client_id: str
    user: str

    @property
    def digest(self) -> str:
        text = f"{self.authority.rstrip('/')}|{self.client_id}|{self.user}".lower()
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SignInStore:
    """The encrypted sign-ins of one data directory; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.data_dir = directory
        self.directory = directory / TOKENS_DIR
        self._box: SecretBox | None = None

    def __repr__(self) -> str:
        return f"SignInStore({str(self.directory)!r})"

    def path(self, key: SignInKey) -> Path:
        return self.directory / f"{key.digest}{SUFFIX}"

    def version(self, key: SignInKey) -> tuple[int, int] | None:
        """Changes whenever the file is replaced (another process signed in or refreshed)."""
        try:
            found = self.path(key).stat()
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns

    def load(self, key: SignInKey) -> str | None:
        """The serialized msal cache, decrypted; None if nothing is stored."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a stored sign-in"
            raise ConfigError(f"cannot read the stored sign-in {path}: {reason}") from None
        try:
            return self._open_box().decrypt(text).reveal()
        except ConfigError:
            raise ConfigError(
                f"the stored sign-in {path} cannot be decrypted: the key ({KEY_ENV} or "
                f"{KEY_FILE}) is not the one it was stored with; sign in again"
            ) from None

    def save(self, key: SignInKey, serialized: str) -> Path:
        """Encrypt and store (atomically: a reader sees the old file or the new, never half)."""
        path = self.path(key)
        try:
            self._make_directory()
            token = self._open_box().encrypt(Secret(serialized))
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:  # mkstemp: mode 0600
                    handle.write(token + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(temporary).replace(path)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temporary).unlink()
                raise
        except OSError as exc:
            raise ConfigError(
                f"cannot store the sign-in in {self.directory}: {exc.strerror}"
            ) from None
        return path

    def remove(self, key: SignInKey) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def _make_directory(self) -> None:
        if not self.data_dir.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            self.directory.chmod(0o700)  # ours alone, whatever the umask made of it

    def _open_box(self) -> SecretBox:
        if self._box is None:
            self._box = SecretBox.open(self.data_dir)
        return self._box


def login_command(
    url: str, client_id: str, tenant: str, authority_host: str, state_path: Path | None
) -> str:
    """The ``mailferry login`` command that stores the sign-in these settings look for."""
    argv = ["mailferry", "login", url, "--m365-client-id", client_id]
    if tenant != DEFAULT_TENANT:
        argv += ["--m365-tenant", tenant]
    if authority_host.rstrip("/") != M365_AUTHORITY_HOST:
        argv += ["--m365-authority", authority_host]
    wanted = state_path or default_state_path()
    if Path(os.environ.get(STATE_ENV) or default_state_path()) != wanted:
        argv += ["--state", str(wanted)]  # what `mailferry login` would take otherwise differs
    return shlex.join(argv)


class MsalDelegated:
    """A grant source over one user's stored sign-in; see the module docstring."""

    def __init__(
        self,
        client_id: str,
        user: str,
        *,
        tenant: str = DEFAULT_TENANT,
        authority_host: str = M365_AUTHORITY_HOST,
        options: SignInOptions | None = None,
        scope: str = M365_DELEGATED_SCOPE,
        ca_file: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        options = options or SignInOptions()
        self.client_id = client_id
        self.user = user
        self.tenant = tenant
        self.authority = f"{authority_host.rstrip('/')}/{tenant}"
        self.scope = scope
        self.key = SignInKey(self.authority, client_id, user)
        self.store = SignInStore(data_dir(options.state_path))
        url = options.url or f"imaps://{user}@outlook.office365.com"
        self.instruction = login_command(url, client_id, tenant, authority_host, options.state_path)
        self._show = options.show  # cleared after the first token: never sign in mid-run
        self._ca_file = ca_file
        self._timeout = timeout
        self._app: Any = None
        self._version: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return (
            f"MsalDelegated(user={self.user!r}, client_id={self.client_id!r}, "
            f"tenant={self.tenant!r})"
        )

    @property
    def path(self) -> Path:
        return self.store.path(self.key)

    def __call__(self, force: bool) -> Grant:
        """A token from the stored sign-in (msal's ``acquire_token_silent``; ``force``: not the
        cached access token). Interactive and the first call: a missing or refused sign-in is made
        now (device flow)."""
        if self._show is None and self.store.version(self.key) is None:
            raise AuthError(self._missing())  # (without msal's round trip to the authority)
        with self._translated():
            app = self._application()
            account = self._account(app)
            result = None
            if account is not None:
                # acquire_token_silent's variant that tells a refusal from an empty cache
                result = app.acquire_token_silent_with_error(
                    [self.scope], account=account, force_refresh=force
                )
                self._persist()
            if not _has_token(result) and self._show is not None:
                result = self._device_flow(app, self._show)
        self._show = None
        if result is None:
            raise AuthError(self._missing())
        if not _has_token(result):
            raise AuthError(
                f"the stored Microsoft 365 sign-in of {self.user} was refused: "
                f"{msal_refusal(result)}; sign in again: {self.instruction}"
            )
        return grant_from_json(result, f"Microsoft 365 sign-in of {self.user}")

    def _missing(self) -> str:
        return (
            f"no Microsoft 365 sign-in stored for {self.user} (app {self.client_id}, tenant "
            f"{self.tenant}); sign in first: {self.instruction}"
        )

    def sign_in(self, show: Show) -> Path:
        """Run the device flow (``show`` gets the message for the user), store it, say where."""
        with self._translated():
            self._device_flow(self._application(), show)
        return self.path

    def forget(self) -> bool:
        """Remove the stored sign-in (its refresh token stays valid until revoked in Entra ID)."""
        self._version = None
        return self.store.remove(self.key)

    def _application(self) -> Any:
        import msal  # noqa: PLC0415 - imported where used: msal pulls in requests and PyJWT

        if self._app is None:
            self._app = msal.PublicClientApplication(
                self.client_id,
                token_cache=msal.SerializableTokenCache(),
                **msal_settings(self.authority, self._ca_file, self._timeout),
            )
        return self._app

    def _account(self, app: Any) -> dict[str, Any] | None:
        """The stored account of this user (re-read when another process replaced the file)."""
        version = self.store.version(self.key)
        if version is None or version != self._version:
            app.token_cache.deserialize(self.store.load(self.key))
            self._version = version
        accounts = app.get_accounts(username=self.user)
        return accounts[0] if accounts else None

    def _persist(self) -> None:
        cache = self._app.token_cache
        if cache.has_state_changed:
            self.store.save(self.key, cache.serialize())
            self._version = self.store.version(self.key)

    def _device_flow(self, app: Any, show: Show) -> dict[str, Any]:
        flow = app.initiate_device_flow(scopes=[self.scope])
        if "user_code" not in flow:
            raise AuthError(f"the Microsoft 365 sign-in cannot start: {msal_refusal(flow)}")
        show(
            str(flow.get("message") or "")
            or f"To sign in, open {flow.get('verification_uri')} and enter the code "
            f"{flow['user_code']}"
        )
        app.token_cache.deserialize(None)  # this file holds this one sign-in: start afresh
        self._version = None  # (re-read the file if this sign-in is not stored)
        result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
        if not _has_token(result):
            raise AuthError(
                f"the Microsoft 365 sign-in of {self.user} did not complete: {msal_refusal(result)}"
            )
        claims = result.get("id_token_claims") or {}
        who = str(claims.get("preferred_username") or claims.get("upn") or "")
        if who.lower() != self.user.lower():
            raise AuthError(
                f"the sign-in was made as {who or 'an unnamed account'}, not {self.user}: "
                f"sign in with the account of the mailbox {self.user}"
            )
        self._persist()
        return result

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        import requests  # noqa: PLC0415 - msal's transport; only its errors are needed here

        who = f"Microsoft 365 sign-in of {self.user}"
        try:
            yield
        except requests.RequestException as exc:
            raise ConnectError(
                f"{who}: cannot reach {self.authority}: {type(exc).__name__}"
            ) from None
        except ValueError as exc:  # msal: the authority's OpenID configuration is unusable
            raise AuthError(f"{who}: {str(exc).splitlines()[0][:200]}") from None


def _has_token(result: object) -> bool:
    return isinstance(result, dict) and "access_token" in result
