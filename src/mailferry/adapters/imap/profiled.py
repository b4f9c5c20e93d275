"""Sessions that know their provider's profile, opened the same way by ``mailferry sync``
(bootstrap.Connector) and by the migration service (scheduler.Sides)."""

from __future__ import annotations

from mailferry.adapters.imap.account import ImapAccount
from mailferry.adapters.imap.session import Credentials, TlsOptions
from mailferry.domain.errors import AuthError
from mailferry.domain.model import Endpoint
from mailferry.domain.profiles import Profile, effective_size_limit


class ProfiledAccount(ImapAccount):
    """An IMAP account that also holds its provider's limits (the profile's message size limit)."""

    profile: Profile | None = None

    @property
    def keeps_bytes(self) -> bool:
        return self.profile is None or not self.profile.rewrites_messages

    @property
    def append_limit(self) -> int | None:
        advertised = super().append_limit
        if self.profile is None:
            return advertised
        return effective_size_limit(self.profile, advertised)


def open_profiled(
    endpoint: Endpoint,
    creds: Credentials,
    profile: Profile | None,
    *,
    tls: TlsOptions,
    timeout: float,
    readonly: bool,
) -> ProfiledAccount:
    """A new session with the profile applied. A token login takes a fresh token from the provider
    (cached until shortly before it expires); if the server refuses it, the token is fetched anew,
    once."""

    def connect() -> ProfiledAccount:
        account = ProfiledAccount.connect(
            endpoint, creds, tls=tls, timeout=timeout, readonly=readonly
        )
        assert isinstance(account, ProfiledAccount)  # noqa: S101 - connect() builds cls
        account.profile = profile
        if profile is not None:
            account.without_capabilities(
                ({"MULTIAPPEND"} if not profile.assume_multiappend else set())
                | ({"CONDSTORE"} if not profile.assume_condstore else set())
            )
        return account

    try:
        return connect()
    except AuthError:
        if creds.tokens is None:
            raise
        creds.tokens.token(force_refresh=True)  # revoked or expired early: ask again, once
        return connect()
