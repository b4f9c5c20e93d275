"""Opening an IMAP session: TLS, login, and the translation of library errors into ours."""

from __future__ import annotations

import contextlib
import functools
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import imapclient
from imapclient import imap4, tls
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailferry.adapters.imap.opening import Namespaces, capabilities_and_namespace
from mailferry.adapters.imap.sasl import plain_response, sasl_login, token_response
from mailferry.adapters.imap.wire import Pipeline, quote_mailbox
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    MailferryError,
)
from mailferry.domain.model import AuthMethod, Endpoint, Security
from mailferry.domain.ports import TokenProvider
from mailferry.domain.responses import slow_down


@dataclass(frozen=True)
class Credentials:
    """A password for ``endpoint.authuser`` if set, else for ``endpoint.user``; or a token provider
    whose tokens log in as ``endpoint.user`` (SASL XOAUTH2/OAUTHBEARER). Never printed."""

    password: str = field(default="", repr=False)
    tokens: TokenProvider | None = field(default=None, repr=False)
    method: AuthMethod = AuthMethod.AUTO

    def __repr__(self) -> str:
        kind = "token" if self.tokens is not None else "password"
        return f"Credentials({kind}=***, method={self.method.value})"

    __str__ = __repr__


MAX_LINE = 64 << 20


class _LongLines:
    """Answer lines of up to ``MAX_LINE`` bytes instead of imaplib's 1 MB (``imaplib._MAXLINE``).

    mailferry asks in ranges wherever an answer grows with a folder, but a server may still send a
    long line of its own (an ALERT, a long keyword list); that is no reason to drop the session.
    imaplib reads every line, the greeting included, through ``IMAP4.readline``.

    A session whose socket was closed already (shut down after a cut, while answers to commands
    written ahead were still to be read) is a lost connection (``abort``), not the ValueError
    of a closed file, which no retry caught: the soak test saw a run end on it.
    """

    file: Any
    error: type[Exception]
    abort: type[Exception]

    def readline(self) -> bytes:
        try:
            line = cast("bytes", self.file.readline(MAX_LINE + 1))
        except ValueError:
            if not self.file.closed:  # not the closed file's: a defect, raised as it came
                raise
            raise self.abort("the connection is closed") from None
        if len(line) > MAX_LINE:
            raise self.error(f"the server sent a line of more than {MAX_LINE} bytes")
        return line

    def read(self, size: int) -> bytes:
        try:
            return cast("bytes", self.file.read(size))
        except ValueError:
            if not self.file.closed:
                raise
            raise self.abort("the connection is closed") from None


_GREETING_CAPABILITY = re.compile(rb"^\* (?:OK|PREAUTH) \[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


class _Greeted(imaplib.IMAP4):
    """Capabilities from the greeting's ``[CAPABILITY ...]`` code where the server sends one
    (Dovecot, Cyrus, Courier do; Exchange does not), instead of imaplib's CAPABILITY command: a
    round trip less per session. After STARTTLS they are asked for again, as imaplib does: what
    was said before TLS may have been forged (RFC 3501 6.2.1, RFC 2595 3.1)."""

    _tls_established: bool

    def _get_capabilities(self) -> None:
        # Whatever imaplib filed under CAPABILITY so far is pre-login: never left lying where
        # imapclient would take it for the post-login list (``_learn_capabilities``).
        self.untagged_responses.pop("CAPABILITY", None)
        announced = greeting_capabilities(self.welcome)
        if self._tls_established or announced is None:
            super()._get_capabilities()  # type: ignore[misc]  # imaplib's, not in typeshed
            return
        self.capabilities = announced


def greeting_capabilities(greeting: bytes) -> tuple[str, ...] | None:
    """The capabilities a greeting announces (upper case, as imaplib keeps them), or None when
    it announces none, or a list imaplib would not accept (no IMAP4rev1): ask then."""
    match = _GREETING_CAPABILITY.match(greeting)
    if match is None:
        return None
    announced = tuple(match.group(1).decode("ascii", "replace").upper().split())
    return announced if {"IMAP4REV1", "IMAP4"} & set(announced) else None


class _Plain(_LongLines, _Greeted, imap4.IMAP4WithTimeout):  # type: ignore[misc]  # imapclient is untyped
    pass


class _Tls(_LongLines, _Greeted, tls.IMAP4_TLS):  # type: ignore[misc]
    pass


class Client(imapclient.IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient on imaplib connections that take long answer lines (``_LongLines``), with
    raw pipelined traffic beside it (``pipeline``)."""

    namespaces: Namespaces | None = None  # NAMESPACE's answer, when it came with CAPABILITY

    @functools.cached_property
    def pipeline(self) -> Pipeline:
        """Raw traffic on this session (wire.py): one per session, so that its tags (``mf1``,
        ``mf2``...) are never used twice. imaplib's documented send/readline/read."""
        return Pipeline(self._imap)

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's name
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            # imapclient's untyped IMAP4_TLS takes the context; mypy sees imaplib's signature.
            return _Tls(self.host, self.port, self.ssl_context, connect_timeout)  # type: ignore[call-arg]
        return _Plain(self.host, self.port, connect_timeout)

    def capabilities(self) -> tuple[bytes, ...]:
        """Before login, imaplib's list (``_Greeted``: the greeting's, or asked again after
        STARTTLS); imapclient would send CAPABILITY at every call after STARTTLS. After login,
        imapclient's cache, which ``_learn_capabilities`` fills."""
        if self._imap.state == "NONAUTH":
            return tuple(c.encode("ascii") for c in self._imap.capabilities)
        return cast("tuple[bytes, ...]", super().capabilities())

    def _normalise_folder(self, folder_name: str | bytes) -> bytes:
        """Every folder argument of imapclient's commands (SELECT, CREATE, SUBSCRIBE...) as
        ``quote_mailbox`` writes it: a name the server sent raw (``RawName``) goes back raw."""
        if isinstance(folder_name, bytes):
            folder_name = folder_name.decode("ascii")
        return quote_mailbox(folder_name)


def open_client(
    endpoint: Endpoint, credentials: Credentials, tls: TlsOptions, timeout: float
) -> Client:
    """Connect and log in; every failure becomes ConnectError or AuthError with one clear line."""
    where = f"{endpoint.host}:{endpoint.port}"
    client = _connect(endpoint, tls, timeout)
    try:
        if endpoint.security is Security.STARTTLS:
            client.starttls(tls.context())
        _login(client, endpoint, credentials)
        client.normalise_times = False
    except MailferryError:
        _quietly_close(client)
        raise
    except ssl.SSLCertVerificationError as exc:
        _quietly_close(client)
        raise ConnectError(_tls_problem(where, exc)) from None
    except (ssl.SSLError, OSError, IMAPClientError) as exc:
        _quietly_close(client)
        raise ConnectError(f"session with {where} failed: {_describe(exc)}") from None
    return client


def login_capabilities(endpoint: Endpoint, tls: TlsOptions, timeout: float) -> tuple[bytes, ...]:
    """What the server offers before login (its ``AUTH=`` mechanisms), over a session that is
    closed at once (``endpoint test``)."""
    where = f"{endpoint.host}:{endpoint.port}"
    client = _connect(endpoint, tls, timeout)
    try:
        if endpoint.security is Security.STARTTLS:
            client.starttls(tls.context())
        return tuple(client.capabilities())
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(_tls_problem(where, exc)) from None
    except (ssl.SSLError, OSError, IMAPClientError) as exc:
        raise ConnectError(f"session with {where} failed: {_describe(exc)}") from None
    finally:
        _quietly_close(client)


def offered_logins(capabilities: tuple[bytes, ...]) -> list[str]:
    """The login methods a server offers: its SASL mechanisms, and LOGIN unless disabled (once:
    SASL's LOGIN mechanism and the LOGIN command both send the password)."""
    found = [as_str(c)[5:] for c in capabilities if c.upper().startswith(b"AUTH=")]
    if b"LOGINDISABLED" not in {c.upper() for c in capabilities} and "LOGIN" not in found:
        found.append("LOGIN")
    return found


def _connect(endpoint: Endpoint, tls: TlsOptions, timeout: float) -> Client:
    """A connected client, not yet logged in (and before STARTTLS)."""
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        client = Client(
            endpoint.host,
            port=endpoint.port,
            ssl=endpoint.security is Security.SSL,
            # Loading the CA store costs a plain run 30-60 ms; STARTTLS asks for it when it starts.
            ssl_context=tls.context() if endpoint.security is Security.SSL else None,
            timeout=timeout,
        )
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve host {endpoint.host!r}: {exc.strerror}") from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(_tls_problem(where, exc)) from None
    except (ssl.SSLError, OSError, IMAPClientError) as exc:
        raise ConnectError(f"cannot connect to {where}: {_describe(exc)}") from None
    _nodelay(client)
    # imapclient turns imaplib's wire tracing on (debug=5) and routes it to a logger: every line and
    # literal is repr()-formatted even when nobody logs it (half the CPU of a bulk copy), and the
    # trace would hold mail and credentials. mailferry never traces the wire.
    client._imap.debug = 0
    return client


def _nodelay(client: imapclient.IMAPClient) -> None:
    sock = client.socket()
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def choose_method(credentials: Credentials, capabilities: tuple[bytes, ...]) -> AuthMethod:
    """The login mechanism: the one asked for, else a token mechanism the server offers, else password."""
    method = credentials.method
    if method is AuthMethod.AUTO:
        if credentials.tokens is None:
            return AuthMethod.PASSWORD
        for candidate in (AuthMethod.XOAUTH2, AuthMethod.OAUTHBEARER):
            if b"AUTH=" + candidate.value.upper().encode() in capabilities:
                return candidate
        offered = " ".join(as_str(c) for c in capabilities if c.startswith(b"AUTH=")) or "none"
        raise AuthError(
            f"the server offers no OAuth2 login (AUTH=XOAUTH2 or AUTH=OAUTHBEARER); it offers {offered}"
        )
    if method is not AuthMethod.PASSWORD and credentials.tokens is None:
        raise AuthError(f"{method.value} login needs a token source")
    return method


def _authenticate(
    client: imapclient.IMAPClient, endpoint: Endpoint, credentials: Credentials
) -> AuthMethod:
    capabilities = tuple(client.capabilities())
    method = choose_method(credentials, capabilities)
    initial = b"SASL-IR" in capabilities  # RFC 4959: the first response on the command line
    if method is AuthMethod.PASSWORD:
        if endpoint.authuser or b"AUTH=PLAIN" in capabilities:
            # SASL PLAIN; with an authorization identity the admin logs in acting as the user.
            plain = plain_response(endpoint.user, credentials.password, endpoint.authuser)
            sasl_login(client, "PLAIN", plain, initial=initial)
        else:
            client.login(endpoint.user, credentials.password)
        return method
    assert credentials.tokens is not None  # noqa: S101 - choose_method checked it
    response = token_response(method, endpoint.user, credentials.tokens.token())
    try:
        sasl_login(client, method.value.upper(), response, initial=initial)
    except LoginError as exc:
        raise LoginError(f"{_describe(exc)} ({method.value.upper()}{response.refusal})") from None
    return method


def _login(client: Client, endpoint: Endpoint, credentials: Credentials) -> None:
    who = f"{endpoint.user} at {endpoint.host}"
    # A CAPABILITY filed before login (pre-login, or from a STARTTLS answer) is never taken for
    # the post-login list, nor is imapclient's cache of one.
    client._imap.untagged_responses.pop("CAPABILITY", None)
    client._cached_capabilities = None
    try:
        _authenticate(client, endpoint, credentials)
    except LoginError as exc:
        said = _describe(exc)
        bye = " ".join(as_str(b) for b in client._imap.untagged_responses.get("BYE", []) if b)
        throttled = slow_down(f"{said} {bye}".strip(), f"login for {who} throttled")
        if throttled is not None:
            raise throttled from None
        if (
            said.startswith("socket error") or bye
        ):  # imapclient wraps a dropped session as LoginError
            raise ConnectError(f"connection lost while logging in {who}: {bye or said}") from None
        raise AuthError(f"login refused for {who}: {said}") from None
    except imaplib.IMAP4.error as exc:
        if isinstance(exc, IMAPClientAbortError | imaplib.IMAP4.abort):
            raise
        raise AuthError(f"login refused for {who}: {_describe(exc)}") from None
    _learn_capabilities(client)


def _learn_capabilities(client: Client) -> None:
    """The post-login capabilities into imapclient's cache: from the login's tagged OK
    ``[CAPABILITY ...]`` (Cyrus; Dovecot after SASL-IR) or an untagged CAPABILITY sent during
    login (Dovecot otherwise), both of which imaplib files under CAPABILITY; else from the
    CAPABILITY command, with NAMESPACE in the same round trip where it was announced before
    login (Courier, Exchange: ``opening.py``). Never the list from before login: servers add to
    it once the user is known (Dovecot: "post-login capabilities have more")."""
    imap = client._imap
    said = imap.untagged_responses.pop("CAPABILITY", None)
    if said and isinstance(said[-1], bytes):
        # A response code ends at its "]" (imaplib's pattern runs to the line's last one); no
        # capability atom holds a "]".
        client._cached_capabilities = tuple(said[-1].split(b"]")[0].upper().split())
        return
    announced = "NAMESPACE" in imap.capabilities  # imaplib's list is still the pre-login one
    capabilities, client.namespaces = capabilities_and_namespace(
        client.pipeline, namespace=announced
    )
    client._cached_capabilities = capabilities


def _tls_problem(where: str, exc: ssl.SSLCertVerificationError) -> str:
    return (
        f"TLS certificate of {where} is not trusted ({exc.verify_message}); "
        "give its CA with --ca-file, or --insecure to skip verification"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text or type(exc).__name__


def _quietly_close(client: imapclient.IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


@contextlib.contextmanager
def translated(folder: str | None = None) -> Iterator[None]:
    """Turn library exceptions into ours: a lost connection is a ConnectError, a refusal a FolderError."""
    try:
        yield
    except MailferryError:
        raise
    except (IMAPClientAbortError, imaplib.IMAP4.abort, OSError) as exc:
        said = _describe(exc)
        throttled = slow_down(said, "server asks to slow down")
        if throttled is not None:
            raise throttled from None
        raise ConnectError(f"connection lost: {said}") from None
    except (IMAPClientError, imaplib.IMAP4.error) as exc:
        said = _describe(exc)
        throttled = slow_down(said, "server asks to slow down")
        if throttled is not None:
            raise throttled from None
        if folder is None:
            raise ConnectError(f"server refused: {said}") from None
        raise FolderError(folder, said) from None


def as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
