"""Testing an endpoint: connect, see which logins the server offers, log in the way a batch would
(a password, the admin's, or a token from the endpoint's source acting for a mailbox), report.

Without a login to test with (no user given, no admin login; or a token endpoint and no mailbox)
the test stops after what needs none: the connection, TLS and its certificate, the capabilities and
login methods offered, the profile (``logged_in`` False, ``note`` saying what a login would need).

``mailferry endpoint test`` and the web's test (page and API) both call ``probe``. A refused login
or an unreachable server is a result (``error``, with what was learnt before), not an exception;
neither a password nor a token is ever part of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailferry.adapters.imap import Credentials, TlsOptions
from mailferry.adapters.imap.profiled import open_profiled
from mailferry.adapters.imap.session import (
    choose_method,
    login_capabilities,
    offered_logins,
)
from mailferry.adapters.oauth.signin import SignInOptions
from mailferry.adapters.oauth.sources import token_provider
from mailferry.adapters.secrets import Secret
from mailferry.adapters.store.records import EndpointRecord
from mailferry.domain.errors import AccountError
from mailferry.domain.model import AuthMethod, Endpoint, Security
from mailferry.domain.profiles import choose_profile
from mailferry.service.batches import BatchService

# The password of the user given to test with; raises ConfigError when there is none.
PasswordOf = Callable[[str], Secret]


@dataclass(frozen=True)
class Probe:
    endpoint: str
    address: str  # imaps://[login@]host:port
    login: str  # who logged in: the admin, the user given, the mailbox a token acts for ("": none)
    profile: str  # the provider profile applied
    profile_by_host: bool  # chosen by the host name (the endpoint's profile is "auto")
    offered: tuple[str, ...] = ()  # the login methods offered before login
    method: str | None = None  # the login method used
    token: bool = False  # the login used a token
    delimiter: str | None = None
    capabilities: tuple[str, ...] = ()  # after login (before it, when there was none)
    tls: str = ""  # "verified", "not verified (--insecure)" or "none"
    logged_in: bool = False
    note: str | None = None  # why there was no login
    error: str | None = None  # why the connection or the login failed

    @property
    def ok(self) -> bool:
        return self.error is None


def probe(
    service: BatchService,
    record: EndpointRecord,
    user: str | None,
    password_of: PasswordOf,
    *,
    timeout: float,
    user_name: str = "--user",
) -> Probe:
    """Test ``record`` as ``user`` (else its admin; else without a login). ``user_name`` is what
    the caller calls the user to test with, for the notes and errors that name it."""
    who = credentials_for(service, record, user, password_of)
    login = who[0] if who else ""
    where = Endpoint(record.host, record.port, Security(record.security), login)
    tls = TlsOptions(Path(record.ca_file) if record.ca_file else None, record.insecure)
    profile = choose_profile(record.profile, record.host)
    found = Probe(
        endpoint=record.name,
        address=where.display() if login else _without_user(where.display()),
        login=login,
        profile=profile.name,
        profile_by_host=record.profile == "auto",
        tls=_tls(record),
    )
    try:
        offered = login_capabilities(where, tls, timeout)
        found = dataclasses.replace(found, offered=tuple(offered_logins(offered)))
        if who is None:
            before = tuple(sorted(c.decode("ascii", "replace") for c in offered))
            return dataclasses.replace(found, capabilities=before, note=_why_not(record, user_name))
        creds = who[1]
        method = choose_method(creds, offered)
        found = dataclasses.replace(found, method=method.value, token=creds.tokens is not None)
        account = open_profiled(where, creds, profile, tls=tls, timeout=timeout, readonly=True)
    except AccountError as exc:
        return dataclasses.replace(found, error=str(exc))
    try:
        return dataclasses.replace(
            found,
            delimiter=account.delimiter,
            capabilities=tuple(sorted(account.capabilities)),
            logged_in=True,
        )
    finally:
        account.close()


def credentials_for(
    service: BatchService,
    record: EndpointRecord,
    user: str | None,
    password_of: PasswordOf,
) -> tuple[str, Credentials] | None:
    """Who logs in, and how: a token acting for ``user`` when the endpoint has a token source;
    else ``user`` with its password; else the endpoint's admin; else nobody (None)."""
    method = AuthMethod(record.auth)
    source = service.token_source(record)
    if source is not None:
        if not user:
            return None
        url = Endpoint(record.host, record.port, Security(record.security), user).display()
        sign_in = SignInOptions(service.state_path, url)  # a delegated source's stored sign-in
        tokens = token_provider(source, user, sign_in=sign_in)
        return user, Credentials(tokens=tokens, method=method)
    if user:
        return user, Credentials(password_of(user).reveal(), method=method)
    if record.auth_user and record.auth_secret:
        password = service.box.decrypt(record.auth_secret)
        return record.auth_user, Credentials(password.reveal(), method=method)
    return None


def _without_user(url: str) -> str:
    scheme, _, rest = url.partition("://@")
    return f"{scheme}://{rest}"


def _why_not(record: EndpointRecord, user_name: str) -> str:
    if record.oauth:
        return f"not logged in: the endpoint logs in with tokens; give {user_name} (a mailbox)"
    return f"not logged in: no admin login; give {user_name} and its password to test one"


def _tls(record: EndpointRecord) -> str:
    if Security(record.security) is Security.NONE:
        return "none"
    return "not verified (insecure)" if record.insecure else "verified"
