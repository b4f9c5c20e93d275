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
- ``delegated.MsalDelegated``: Microsoft 365 delegated: one user's own sign-in (device code),
  stored encrypted; its refresh token makes that user's tokens.

Errors: an identity provider that cannot be reached is a ``ConnectError`` (the run retries it like a
dropped connection); one that refuses is an ``AuthError``. Neither a secret nor a token ever appears in
a repr, a log line or an error message.
"""

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.adapters.oauth.sources import OPTIONS, SourceNames, TokenSource, token_provider
from mailferry.adapters.oauth.tokens import CachedToken, Grant
from mailferry.domain.ports import TokenProvider

__all__ = [
    "M365_AUTHORITY_HOST",
    "OPTIONS",
    "CachedToken",
    "Grant",
    "SourceNames",
    "TokenProvider",
    "TokenSource",
    "token_provider",
]
