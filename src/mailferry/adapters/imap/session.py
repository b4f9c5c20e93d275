"""Opening an IMAP session: TLS, login, and the translation of library errors into ours."""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imapclient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError
from imapclient.imapclient import seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    MailferryError,
    ThrottledError,
)
from mailferry.domain.model import Endpoint, Security
from mailferry.domain.responses import throttle_delay


@dataclass(frozen=True)
class TlsOptions:
    ca_file: Path | None = None
    insecure: bool = False  # skip certificate verification (explicit opt-in only)

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class Credentials:
    """A password for ``endpoint.authuser`` if set, else for ``endpoint.user``. Never printed."""

    password: str = ""

    def __repr__(self) -> str:
        return "Credentials(password=***)"


class Client(imapclient.IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """IMAPClient plus a FETCH that takes a sequence set such as ``1:*`` or ``5:900,1000``.

    imapclient 4.1's ``fetch`` drops every response whose UID it cannot find in its argument, so a range
    like ``1:*`` returns nothing. This is the same command path without that filter.
    """

    def fetch_set(
        self, message_set: str, data: list[str], modifiers: list[str] | None = None
    ) -> dict[int, dict[bytes, Any]]:
        args = [
            "FETCH",
            message_set.encode("ascii"),
            seq_to_parenstr_upper(data),
            seq_to_parenstr_upper(modifiers) if modifiers else None,
        ]
        if self.use_uid:
            args.insert(0, "UID")
        tag = self._imap._command(*args)
        typ, raw = self._imap._command_complete("FETCH", tag)
        self._checkok("fetch", typ, raw)
        typ, raw = self._imap._untagged_response(typ, raw, "FETCH")
        parsed: dict[int, dict[bytes, Any]] = parse_fetch_response(
            raw, self.normalise_times, self.use_uid
        )
        return parsed


def open_client(
    endpoint: Endpoint, credentials: Credentials, tls: TlsOptions, timeout: float
) -> Client:
    """Connect and log in; every failure becomes ConnectError or AuthError with one clear line."""
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        client = Client(
            endpoint.host,
            port=endpoint.port,
            ssl=endpoint.security is Security.SSL,
            ssl_context=tls.context(),
            timeout=timeout,
        )
    except socket.gaierror as exc:
        raise ConnectError(f"cannot resolve host {endpoint.host!r}: {exc.strerror}") from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(_tls_problem(where, exc)) from None
    except (ssl.SSLError, OSError, IMAPClientError) as exc:
        raise ConnectError(f"cannot connect to {where}: {_describe(exc)}") from None
    try:
        _nodelay(client)
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


def _nodelay(client: imapclient.IMAPClient) -> None:
    sock = client.socket()
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _login(client: imapclient.IMAPClient, endpoint: Endpoint, credentials: Credentials) -> None:
    who = f"{endpoint.user} at {endpoint.host}"
    try:
        if endpoint.authuser:
            # SASL PLAIN with an authorization identity: the admin logs in acting as the user.
            client.plain_login(endpoint.authuser, credentials.password, endpoint.user)
        elif b"AUTH=PLAIN" in client.capabilities():
            client.plain_login(endpoint.user, credentials.password)
        else:
            client.login(endpoint.user, credentials.password)
    except LoginError as exc:
        said = _describe(exc)
        bye = " ".join(as_str(b) for b in client._imap.untagged_responses.get("BYE", []) if b)
        wait = throttle_delay(f"{said} {bye}")
        if wait is not None:
            raise ThrottledError(f"login for {who} throttled: {bye or said}", wait) from None
        if (
            said.startswith("socket error") or bye
        ):  # imapclient wraps a dropped session as LoginError
            raise ConnectError(f"connection lost while logging in {who}: {bye or said}") from None
        raise AuthError(f"login refused for {who}: {said}") from None
    except imaplib.IMAP4.error as exc:
        if isinstance(exc, IMAPClientAbortError | imaplib.IMAP4.abort):
            raise
        raise AuthError(f"login refused for {who}: {_describe(exc)}") from None


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
        wait = throttle_delay(said)
        if wait is not None:
            raise ThrottledError(f"server asks to slow down: {said}", wait) from None
        raise ConnectError(f"connection lost: {said}") from None
    except (IMAPClientError, imaplib.IMAP4.error) as exc:
        said = _describe(exc)
        wait = throttle_delay(said)
        if wait is not None:
            raise ThrottledError(f"server asks to slow down: {said}", wait) from None
        if folder is None:
            raise ConnectError(f"server refused: {said}") from None
        raise FolderError(folder, said) from None


def as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)
