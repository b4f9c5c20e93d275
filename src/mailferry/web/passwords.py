"""The admin password's hash: scrypt (RFC 7914) at OWASP's current cost, parameters kept with it.

A stored hash reads ``scrypt$N$r$p$salt$hash`` (salt and hash url-safe base64), so a hash made at
an older, lower cost still checks, and ``needs_rehash`` tells the caller to store a new one at the
current cost after the next successful login (the only moment the password is known).

OWASP's Password Storage Cheat Sheet: N=2^17, r=8, p=1. That is 128 MiB of memory per check
(128 * N * r bytes), so ``maxmem`` must allow it (hashlib's default is 32 MiB); checks are also
few at a time (see ``web.throttle``), never one per parallel request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

MAX_MEMORY = 1024 * 1024 * 1024  # a stored hash asking for more than 1 GiB is refused, not run


@dataclass(frozen=True, order=True)
class ScryptCost:
    """scrypt's work factors. Only tests pass a lower cost, explicitly (``ScryptCost(n=2**10)``)."""

    n: int = 2**17
    r: int = 8
    p: int = 1

    @property
    def memory(self) -> int:
        """Bytes scrypt needs, passed as ``maxmem``: OpenSSL's V (128 r (N + 2)) and B (128 r p)
        arrays, plus a MiB of slack (about 129 MiB at OWASP's cost)."""
        return 128 * self.r * (self.n + 2 + self.p) + 1024 * 1024

    def weaker_than(self, other: ScryptCost) -> bool:
        return self.n < other.n or self.r < other.r or self.p < other.p


OWASP = ScryptCost()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, cost: ScryptCost, length: int) -> bytes:
    if cost.memory > MAX_MEMORY:
        raise ValueError("scrypt cost beyond the memory limit")
    return hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.memory,
        dklen=length,
    )


def hash_password(password: str, cost: ScryptCost = OWASP) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, cost, 32)
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(digest)}"


def cost_of(stored: str) -> ScryptCost | None:
    """The parameters a stored hash was made with (None: not a hash of ours)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return None
    return ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))


def check_password(password: str, stored: str) -> bool:
    cost = cost_of(stored)
    if cost is None:
        return False
    salt, digest = stored.split("$")[4:]
    try:
        expected = _unb64(digest)
        found = _scrypt(password, _unb64(salt), cost, len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


def needs_rehash(stored: str, cost: ScryptCost = OWASP) -> bool:
    """True when ``stored`` was made at a lower cost than ``cost`` (or is unreadable)."""
    found = cost_of(stored)
    return found is None or found.weaker_than(cost)
