"""TLS settings that every adapter speaking to a server shares (IMAP, WebDAV): verified by default,
a CA file to trust, or verification off on explicit request."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


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
