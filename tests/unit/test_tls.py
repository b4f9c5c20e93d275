"""TLS contexts are made once per setting and reused (loading the CA store costs 30-60 ms a
connection), made again when the CA file changes or after ``CONTEXT_TTL``; the HTTP adapters get
contexts of their own (httpcore changes the one it is handed)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from mailferry.adapters import tls
from mailferry.adapters.tls import TlsOptions
from mailferry.sandbox.dovecot import _self_signed_cert


def test_a_context_is_reused_per_setting_until_its_ca_file_changes(tmp_path: Path) -> None:
    cert, _key = _self_signed_cert(tmp_path)
    trusting = TlsOptions(ca_file=cert)
    first = trusting.context()
    assert TlsOptions(ca_file=cert).context() is first
    assert TlsOptions().context() is not first
    insecure = TlsOptions(insecure=True).context()
    assert insecure.verify_mode == ssl.CERT_NONE
    assert TlsOptions().context().verify_mode == ssl.CERT_REQUIRED
    stat = cert.stat()
    os.utime(cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert trusting.context() is not first  # the file changed: loaded again


def test_a_context_is_made_again_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    first = TlsOptions().context()
    monkeypatch.setattr(tls, "CONTEXT_TTL", 0.0)
    assert TlsOptions().context() is not first


def test_an_http_client_gets_a_context_of_its_own() -> None:
    options = TlsOptions()
    own = options.own_context()
    assert own is not options.context()
    assert own is not options.own_context()
