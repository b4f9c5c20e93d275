"""What an app-only Graph token allows: its ``roles`` claim (the application permissions an
administrator consented to), read to tell the user before a run what it will be able to move.

The token is only read, never verified: Graph verifies it, and this is a diagnosis, not a check
anyone relies on for security. Nothing of the token but the claims named here is ever shown.
"""

from __future__ import annotations

import base64
import json

from mailferry.domain.errors import AuthError


def token_claims(token: str) -> dict[str, object]:
    """The payload of a JWT (``header.payload.signature``)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("the Graph token is not a JWT: its permissions cannot be read")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, UnicodeDecodeError):
        raise AuthError("the Graph token's claims are unreadable") from None
    if not isinstance(claims, dict):
        raise AuthError("the Graph token's claims are unreadable")
    return claims


def token_roles(token: str) -> frozenset[str]:
    """The application permissions in the token (``roles``); empty for a delegated token."""
    roles = token_claims(token).get("roles", [])
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(str(role) for role in roles)
