"""Sessions that know their provider's profile, opened the same way by ``mailferry sync`` and by
the migration service's scheduler (both through ``bootstrap.Connector``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

from mailferry.adapters.imap.namespaced import NamespacedAccount
from mailferry.adapters.imap.session import Credentials
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import AuthError
from mailferry.domain.model import Endpoint, FetchedMessage, MessageMeta
from mailferry.domain.profiles import Profile, effective_size_limit
from mailferry.domain.receipts import neutralise_receipt_requests

HEAD_LIMIT = 1 << 20  # bytes of a message searched for its header section
HASH_CHUNK = 1 << 20


class ProfiledAccount(NamespacedAccount):
    """An IMAP account that also holds its provider's limits (the profile's message size limit)
    and, as a source, may neutralise read-receipt requests in what it reads (``--neutralise-read-
    receipts``): everything downstream (planning, intents, verify) then sees the same bytes."""

    profile: Profile | None = None
    neutralise_receipts: bool = False

    @property
    def keeps_bytes(self) -> bool:
        return self.profile is None or not self.profile.rewrites_messages

    @property
    def append_limit(self) -> int | None:
        advertised = super().append_limit
        if self.profile is None:
            return advertised
        return effective_size_limit(self.profile, advertised)

    def fetch_messages(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        for message in super().fetch_messages(folder, metas):
            if self.neutralise_receipts:
                _rewrite_head(message)
            yield message


def _rewrite_head(message: FetchedMessage) -> None:
    """Rewrite the spooled message's header in place (same length) and hash it anew."""
    body = message.body
    head = body.read(HEAD_LIMIT)
    new = neutralise_receipt_requests(head)
    if new != head:
        body.seek(0)
        body.write(new)
        body.seek(0)
        digest = hashlib.sha256()
        while chunk := body.read(HASH_CHUNK):
            digest.update(chunk)
        message.sha256 = digest.hexdigest()
    body.seek(0)


def open_profiled(
    endpoint: Endpoint,
    creds: Credentials,
    profile: Profile | None,
    *,
    tls: TlsOptions,
    timeout: float,
    readonly: bool,
    neutralise_receipts: bool = False,
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
        account.neutralise_receipts = neutralise_receipts
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
