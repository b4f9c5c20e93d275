"""TLS settings that every adapter speaking to a server shares (IMAP, WebDAV): verified by default,
a CA file to trust, or verification off on explicit request.

Loading the system's CA certificates into a context takes 30-60 ms, and an IMAP session over TLS
asks for a context on every connection (the lanes of a run, each reconnection). So the
contexts are kept per setting for ``CONTEXT_TTL`` seconds (an SSLContext is shared safely between
threads and connections as long as nobody changes it); a CA file that changed on disk, or an older
context, is loaded again. The HTTP adapters (DAV, Graph) take a context of their own: httpcore
sets its ALPN protocols on the context it is handed."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CONTEXT_TTL = 300.0  # seconds a context is reused (a renewed CA store is read within this)
_MADE: dict[tuple[Path | None, bool], tuple[float, int | None, ssl.SSLContext]] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class TlsOptions:
    ca_file: Path | None = None
    insecure: bool = False  # skip certificate verification (explicit opt-in only)

    def context(self) -> ssl.SSLContext:
        """A client context for these settings, shared: callers must not change it (an HTTP
        client sets its ALPN protocols on the context it is given: it takes ``own_context``)."""
        key = (self.ca_file, self.insecure)
        stamp = _stamp(self.ca_file)
        now = time.monotonic()
        with _LOCK:
            made = _MADE.get(key)
            if made is not None and made[1] == stamp and now - made[0] < CONTEXT_TTL:
                return made[2]
            context = self.own_context()
            _MADE[key] = (now, stamp, context)
            return context

    def own_context(self) -> ssl.SSLContext:
        """A new client context for these settings, the caller's to change."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _stamp(path: Path | None) -> int | None:
    """The CA file's modification time (None: no file, or unreadable: the load will say)."""
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
