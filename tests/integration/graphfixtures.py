"""What the FAKE Graph collection tests share: a mailbox's collections opened with a token the
FAKE Graph issued for the given application roles."""

from __future__ import annotations

from typing import Any

from mailferry.adapters.graph.collections import GraphCollections
from mailferry.adapters.graph.session import GraphSession
from mailferry.adapters.tls import TlsOptions
from mailferry.sandbox.graph.server import FakeGraph


class StaticToken:
    """A token provider that always gives the same app-only token (the FAKE Graph's own)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self, force_refresh: bool = False) -> str:
        del force_refresh
        return self._token


def open_collections(
    fake: FakeGraph, upn: str, roles: tuple[str, ...], **listed: Any
) -> GraphCollections:
    """``upn``'s calendars, contacts (and To Do lists with ``tasks=True``) on the FAKE Graph."""
    token = StaticToken(fake.issue_token("mailferry", roles))
    session = GraphSession(fake.url, upn, token, TlsOptions(ca_file=fake.ca_file))
    return GraphCollections(session, upn, **listed)
