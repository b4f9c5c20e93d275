"""A throwaway Radicale 3 CalDAV/CardDAV server on 127.0.0.1 (plain HTTP: loopback only).

Users live in an htpasswd file with plain passwords (Radicale's ``htpasswd_encryption = plain``;
re-read on every login, so users can be added while it runs). Each new user gets a default
calendar (``calendar/``: VEVENT, VTODO, VJOURNAL) and address book (``contacts/``) on first
login, through ``predefined_collections``. Rights are ``owner_only``. Radicale's email hook is
on and sends to ``smtp_port`` (a SmtpSink), so tests can show what a migration makes it send.
"""

from __future__ import annotations

import json
from pathlib import Path

from mailferry.sandbox.davserver import DavServer
from mailferry.sandbox.dovecot import HOST

DEFAULT_COLLECTIONS = {
    "calendar": {
        "tag": "VCALENDAR",
        "D:displayname": "Calendar",
        "C:supported-calendar-component-set": "VEVENT,VTODO,VJOURNAL",
    },
    "contacts": {"tag": "VADDRESSBOOK", "D:displayname": "Contacts"},
}


class RadicaleServer(DavServer):
    name = "radicale"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "config"

    def _htpasswd_line(self, user: str, password: str) -> str:
        return f"{user}:{password}"

    def _arguments(self) -> list[str]:
        return ["--config", str(self.config_path)]

    def _configure(self) -> None:
        lines = [
            "[server]",
            f"hosts = {HOST}:{self.port}",
            "[auth]",
            "type = htpasswd",
            f"htpasswd_filename = {self.htpasswd_path}",
            "htpasswd_encryption = plain",
            "delay = 0",  # Radicale waits 1 s after a wrong password by default
            "[rights]",
            "type = owner_only",
            "[storage]",
            f"filesystem_folder = {self.data_dir / 'collections'}",
            f"predefined_collections = {json.dumps(DEFAULT_COLLECTIONS)}",
            "[web]",
            "type = none",
            "[logging]",
            "level = warning",
            *self._hook_config(),
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _hook_config(self) -> list[str]:
        if self.smtp_port is None:
            return []
        return [
            "[hook]",
            "type = email",
            f"smtp_server = {HOST}",
            f"smtp_port = {self.smtp_port}",
            "from_email = radicale@example.org",
        ]
