"""What the service says about endpoints to the people who set them up: the names their settings
have where they were given (the CLI's options, the web form's fields, the API's keys), so that
every problem points at something the reader can see; and an endpoint's login kind, for lists."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mailferry.adapters.oauth.sources import OPTIONS, SourceNames
from mailferry.adapters.store.records import EndpointRecord


@dataclass(frozen=True)
class EndpointNames:
    host: str
    port: str
    max_connections: str
    security: str
    allow_plaintext: str
    auth_user: str
    auth_password: str
    ca_file: str
    auth: str
    profile: str
    oauth_sources: str  # the ways to give a token source, for "needs a token source: ..."
    tokens: SourceNames
    dav: str = "--dav"
    dav_ca_file: str = "--dav-ca-file"
    files: str = "--files"


OPTION_NAMES = EndpointNames(
    host="--host",
    port="--port",
    max_connections="--max-connections",
    security="--security",
    allow_plaintext="--allow-plaintext",
    auth_user="--auth-user",
    auth_password="--auth-password-file",  # noqa: S106 - an option's name
    ca_file="--ca-file",
    auth="--auth",
    profile="--profile",
    oauth_sources="--oauth-token-command, --m365-tenant with --m365-client-id, "
    "--m365-delegated, or --google-service-account-file",
    tokens=OPTIONS,
)

# How the stored token source (its JSON keys; secrets encrypted) reads in a list of endpoints.
LOGIN_KINDS = (
    ("command", "token command"),
    ("google_service_account_json", "Google service account"),
    ("m365_delegated", "Microsoft 365 delegated"),  # stored only when true
    ("m365_tenant", "Microsoft 365 app-only"),
    ("m365_client_id", "Microsoft 365 app-only"),
)


def login_kind(record: EndpointRecord) -> str:
    """How the endpoint's mailboxes log in: ``files`` (none: mail in files), ``password`` (each its own, from the CSV), ``admin
    login``, or the token source's kind. Read from the stored settings' names: nothing is
    decrypted."""
    if record.oauth:
        stored = json.loads(record.oauth)
        for key, kind in LOGIN_KINDS:
            if stored.get(key) not in (None, False):
                return kind
    if record.files:
        return "files"
    return "admin login" if record.auth_user else "password"
