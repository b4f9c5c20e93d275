"""A throwaway Xandikos CalDAV/CardDAV server on 127.0.0.1, multi-user, over HTTPS.

Xandikos checks passwords itself only in ``xandikos multi-user --htpasswd FILE``, which insists
on TLS (``--autocert``): the certificate is made here, for 127.0.0.1, and served from
``--state-dir``, so clients verify it with ``ca_file``. The htpasswd file holds ``{SHA}``
entries (Xandikos's bcrypt needs the ``bcrypt`` package, which nothing else here needs); it is
re-read when it changes. A user's principal (``/USER/``) with a default calendar
(``calendars/calendar/``) and address book (``contacts/addressbook/``) is created on first login
(``--defaults``). Xandikos calls multi-user mode experimental: users are not fully isolated.
Outbound iMIP goes by SMTP to ``smtp_port`` (a SmtpSink).
"""

from __future__ import annotations

import base64
import hashlib

from mailferry.sandbox.davserver import DavServer
from mailferry.sandbox.dovecot import HOST, _self_signed_cert


class XandikosServer(DavServer):
    name = "xandikos"
    scheme = "https"

    def _htpasswd_line(self, user: str, password: str) -> str:
        digest = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
        return f"{user}:{{SHA}}{base64.b64encode(digest).decode()}"

    def _configure(self) -> None:
        certs = self.data_dir / "state" / "certs"
        certs.mkdir(parents=True)
        cert, key = _self_signed_cert(certs)
        key.rename(certs / "selfsigned.key")
        self.ca_file = cert.rename(certs / "selfsigned.crt")
        (self.data_dir / "collections").mkdir()

    def _arguments(self) -> list[str]:
        return [
            "multi-user",
            *("-d", str(self.data_dir / "collections")),
            *("--state-dir", str(self.data_dir / "state")),
            *("-l", HOST, "-p", str(self.port)),
            "--autocert",
            *("--htpasswd", str(self.htpasswd_path)),
            "--defaults",
            "--no-detect-systemd",
            *self._imip_arguments(),
        ]

    def _imip_arguments(self) -> list[str]:
        if self.smtp_port is None:
            return []
        return [
            *("--imip-send", "smtp"),
            *("--smtp-host", HOST, "--smtp-port", str(self.smtp_port)),
            *("--smtp-from", "xandikos@example.org"),
        ]
