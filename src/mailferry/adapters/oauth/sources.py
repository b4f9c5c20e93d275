"""A token source as settings (an endpoint's, stored or from the command line), and the provider it
makes (``token_provider``). Each kind of source lives in its own module of this package; Google's
and the delegated sign-in (and the ``cryptography`` they load) are imported when a source is one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailferry.adapters.oauth.app_only import (
    GRAPH_URL,
    M365_AUTHORITY_HOST,
    ClientCertificate,
    MsalAppOnly,
)
from mailferry.adapters.oauth.command import command_grant, shlex_split
from mailferry.adapters.oauth.tokens import CachedToken
from mailferry.domain.errors import ConfigError
from mailferry.domain.ports import TokenProvider
from mailferry.domain.profiles import choose_profile

if TYPE_CHECKING:
    from mailferry.adapters.oauth.delegated import MsalDelegated
    from mailferry.adapters.oauth.signin import SignInOptions


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
    # Microsoft Graph's base URL (national clouds and tests differ); given, it also says that the
    # side is Microsoft 365 for calendars, contacts, tasks and notes (see graph_tokens)
    m365_graph_url: str | None = None
    google_service_account_json: str | None = field(default=None, repr=False)
    m365_delegated: bool = False  # one user's own sign-in (device code): see delegated.py

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
            from mailferry.adapters.oauth.google import ServiceAccountKey  # noqa: PLC0415 - a Google source

            ServiceAccountKey.parse(self.google_service_account_json, names.google_service_account)
        if self.m365_delegated:
            if problems := delegated_problems(self, names):
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


def token_provider(
    source: TokenSource,
    subject: str,
    names: SourceNames = OPTIONS,
    sign_in: SignInOptions | None = None,
) -> TokenProvider | None:
    """A cached provider over the source (None if it names none). ``subject`` is the mailbox a
    Google or delegated token acts for; the other sources' tokens do not depend on it. ``sign_in``:
    where a delegated source finds its sign-in (see ``delegated.SignInOptions``)."""
    source.check(names)
    if source.m365_delegated:
        return CachedToken(delegated_grant(source, subject, sign_in))
    if source.command:
        return CachedToken(command_grant(source.command))
    if source.google_service_account_json is not None:
        from mailferry.adapters.oauth.google import (  # noqa: PLC0415 - a Google source
            GoogleServiceAccount,
            ServiceAccountKey,
        )

        key = ServiceAccountKey.parse(
            source.google_service_account_json, names.google_service_account
        )
        return CachedToken(GoogleServiceAccount(key, subject))
    if source.kinds(names):
        return CachedToken(source._m365(names))
    return None


def graph_tokens(source: TokenSource, names: SourceNames = OPTIONS) -> TokenProvider:
    """A cached provider of app-only Graph tokens (scope ``{graph URL}/.default``) from the source's
    Microsoft 365 app registration: the same tenant, client and secret or certificate as its
    IMAP tokens, another resource."""
    if source.m365_delegated or not (source.m365_tenant or source.m365_client_id):
        raise ConfigError(
            f"Microsoft Graph needs an app-only login: {names.m365} with "
            f"{names.m365_client_secret} or {names.m365_certificate}"
        )
    app = source._m365(names)
    app.scope = f"{(source.m365_graph_url or GRAPH_URL).rstrip('/')}/.default"
    return CachedToken(app)


# -- a delegated source's settings (``delegated.MsalDelegated`` is its grant) -------------------


def delegated_problems(source: TokenSource, names: SourceNames = OPTIONS) -> list[str]:
    """What is wrong with a delegated source's settings (all of it, for one ConfigError)."""
    problems = []
    if not source.m365_client_id:
        problems.append(
            f"{names.m365_delegated} needs {names.m365_client_id} "
            "(the application id of a public client app)"
        )
    for value, name in (
        (source.m365_client_secret, names.m365_client_secret),
        (source.m365_certificate_pem, names.m365_certificate),
    ):
        if value is not None:
            problems.append(
                f"{names.m365_delegated} signs in as the user: a public client has no secret; "
                f"drop {name} (it is for app-only logins)"
            )
    return problems


def delegated_grant(
    source: TokenSource, subject: str, options: SignInOptions | None = None
) -> MsalDelegated:
    """The grant source for ``subject``'s own sign-in (the settings checked by the caller)."""
    from mailferry.adapters.oauth.delegated import (  # noqa: PLC0415 - a delegated source
        DEFAULT_TENANT,
        MsalDelegated,
    )

    if not source.m365_client_id:
        raise ConfigError(delegated_problems(source))
    return MsalDelegated(
        source.m365_client_id,
        subject,
        tenant=source.m365_tenant or DEFAULT_TENANT,
        authority_host=source.m365_authority,
        options=options,
    )


def graph_url_of(source: TokenSource | None, host: str) -> str | None:
    """The Graph base URL of a side, or None when it is not Microsoft 365 through Graph: an app-only
    Microsoft 365 token source and either ``m365_graph_url`` or Exchange Online's host. A profile
    chosen by name does not count: it may stand for a proxy or a test server that has no Graph."""
    if source is None or source.m365_delegated or not source.m365_tenant:
        return None
    if source.m365_graph_url:
        return source.m365_graph_url
    return GRAPH_URL if choose_profile(None, host).name == "microsoft365" else None
