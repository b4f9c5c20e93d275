"""SASL over imaplib: AUTHENTICATE with the first response on the command line where the server
offers SASL-IR (RFC 4959), and the client side of PLAIN, XOAUTH2 and OAUTHBEARER.

imaplib's ``authenticate`` always waits for a ``+`` before the first response: two round trips
for a login that needs one. Its errors are kept (imapclient's LoginError around imaplib's
texts), so what ``session._login`` makes of a refusal, a BYE or a throttle does not change.
"""

from __future__ import annotations

import base64
import imaplib
import json
from collections.abc import Callable

import imapclient
from imapclient.exceptions import LoginError

from mailferry.domain.model import AuthMethod


def plain_response(user: str, password: str, authuser: str | None) -> PlainResponse:
    """PLAIN's one response: ``authuser`` (an admin) logs in acting as ``user`` when given."""
    authzid, authcid = (user, authuser) if authuser else ("", user)
    return PlainResponse(f"{authzid}\0{authcid}\0{password}".encode())


class PlainResponse:
    """A one-step SASL client (PLAIN): its response once; to any later challenge, ``*`` (cancel)."""

    def __init__(self, response: bytes) -> None:
        self._response: bytes | None = response

    def __call__(self, _challenge: bytes) -> bytes | None:
        response, self._response = self._response, None
        return response

    def __repr__(self) -> str:
        return "PlainResponse(***)"


def sasl_login(
    client: imapclient.IMAPClient,
    mechanism: str,
    respond: Callable[[bytes], bytes | None],
    *,
    initial: bool,
) -> None:
    """``AUTHENTICATE mechanism`` as imaplib's ``authenticate``, with the same errors (imapclient's
    LoginError), but with the first response on the command line when ``initial`` (SASL-IR):
    one round trip instead of two. ``respond`` answers each challenge (decoded; None cancels);
    with ``initial`` it is first called with an empty challenge, for that first response."""
    imap = client._imap
    args = [mechanism]
    first = respond(b"") if initial else None
    if first is not None:  # "=" stands for an empty one (RFC 4959)
        args.append(base64.b64encode(first).decode("ascii") or "=")
    # imaplib writes each response its literal callable returns after a "+" (it must be a bound
    # method), until the tagged answer.
    imap.literal = _Challenges(respond).answer
    try:
        typ, dat = imap._simple_command("AUTHENTICATE", *args)
    except imaplib.IMAP4.error as exc:  # BAD, a lost connection, a BYE: as imapclient wraps them
        raise LoginError(str(exc)) from None
    finally:
        imap.literal = None
    if typ != "OK":
        raise LoginError(dat[-1].decode("utf-8", "replace"))
    imap.state = "AUTH"


class _Challenges:
    """The base64 of a SASL exchange around ``respond`` (imaplib's ``_Authenticator``, private)."""

    def __init__(self, respond: Callable[[bytes], bytes | None]) -> None:
        self._respond = respond

    def answer(self, challenge: bytes) -> bytes:
        try:
            decoded = base64.b64decode(challenge or b"", validate=False)
        except ValueError:
            decoded = b""
        response = self._respond(decoded)
        return b"*" if response is None else base64.b64encode(response)


class TokenResponse:
    """The client side of XOAUTH2 / OAUTHBEARER (RFC 7628): the token first; when the server answers
    with an error challenge (JSON), the dummy response that ends the exchange, keeping what it said."""

    def __init__(self, method: AuthMethod, initial: str) -> None:
        self._method = method
        self._initial: str | None = initial
        self.refusal = ""

    def __call__(self, challenge: bytes) -> bytes:
        """The token to the first (empty) challenge; the dummy response to an error challenge."""
        if self._initial is not None:
            initial, self._initial = self._initial, None
            return initial.encode("utf-8")
        try:
            said = json.loads(challenge)
            status = said.get("status") if isinstance(said, dict) else None
            self.refusal = f", token refused with status {status}" if status else ""
        except (ValueError, UnicodeError):
            self.refusal = ""
        return b"\x01" if self._method is AuthMethod.OAUTHBEARER else b""

    def __repr__(self) -> str:
        return f"TokenResponse({self._method.value})"


def token_response(method: AuthMethod, user: str, token: str) -> TokenResponse:
    if method is AuthMethod.XOAUTH2:
        return TokenResponse(method, f"user={user}\x01auth=Bearer {token}\x01\x01")
    gs2 = "n,a=" + user.replace("=", "=3D").replace(",", "=2C") + ","
    return TokenResponse(method, f"{gs2}\x01auth=Bearer {token}\x01\x01")
