"""An SMTP server on 127.0.0.1 that keeps every message it is given, for tests to inspect.

The DAV test servers send their invitations (Radicale's email hook, Xandikos's iMIP) here, so
a test can assert that a migration sent nothing. It runs aiosmtpd in its own thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from aiosmtpd.controller import Controller

from mailferry.sandbox.dovecot import HOST, free_port

if TYPE_CHECKING:
    from types import TracebackType


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: tuple[str, ...]
    content: bytes


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[ReceivedMail] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        mail = ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
        with self.lock:
            self.messages.append(mail)
        return "250 OK"


class SmtpSink:
    """``with SmtpSink() as sink: ...; sink.messages``: every message received so far."""

    host = HOST

    def __init__(self) -> None:
        self.port = free_port()
        self._recorder = _Recorder()
        self._controller = Controller(self._recorder, hostname=HOST, port=self.port)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._recorder.lock:
            return list(self._recorder.messages)

    def clear(self) -> None:
        with self._recorder.lock:
            self._recorder.messages.clear()

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
