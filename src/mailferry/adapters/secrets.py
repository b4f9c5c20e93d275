"""Credentials at rest: Fernet tokens (AES-128-CBC + HMAC-SHA256) under a MultiFernet key ring.

The key ring comes from ``MAILFERRY_KEY`` (comma-separated url-safe base64 Fernet keys, the first
one encrypts, all of them decrypt: rotate by putting a new key first), else from ``secret.key`` in
the data directory, created on first use with mode 0600 (one key per line, same rule). A secret
never appears in a repr, a log line, an exception message or a report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mailferry.domain.errors import ConfigError

KEY_ENV = "MAILFERRY_KEY"
KEY_FILE = "secret.key"


@dataclass(frozen=True)
class Secret:
    """A password in memory: ``reveal()`` it only where it is used (the login)."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


class SecretBox:
    """Encrypts and decrypts secrets with the key ring; see the module docstring."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigError("no encryption key")
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                f"{KEY_ENV} or {KEY_FILE}: not a valid key (expected url-safe base64 of 32 bytes)"
            ) from None

    @classmethod
    def open(cls, data_dir: Path) -> SecretBox:
        """The key ring from ``MAILFERRY_KEY``, else the data directory's key file (made if absent)."""
        env = os.environ.get(KEY_ENV, "").strip()
        if env:
            return cls([k.strip().encode("ascii") for k in env.split(",") if k.strip()])
        return cls(_key_file(data_dir / KEY_FILE))

    def encrypt(self, secret: Secret) -> str:
        return self._fernet.encrypt(secret.reveal().encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> Secret:
        try:
            return Secret(self._fernet.decrypt(token.encode("ascii")).decode("utf-8"))
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                f"a stored password cannot be decrypted: the key ({KEY_ENV} or {KEY_FILE}) "
                "is not the one it was encrypted with"
            ) from None

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the first key of the ring."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ConfigError(
                "a stored password cannot be decrypted with the current keys"
            ) from None


def _key_file(path: Path) -> list[bytes]:
    """Read the key file; create it (0600, in a 0700 directory if that is new) on first use."""
    if not path.exists():
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile: read theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        lines = path.read_bytes().split()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip()]
