"""What a server's words mean for us: slow down, mailbox full, or a refusal of one message.

Servers say "slow down" in many dialects: RFC 5530 codes ([THROTTLED] is not standard but common,
[UNAVAILABLE], [LIMIT]), Exchange Online's "Server Unavailable. 15" and "Request is throttled. Suggested
Backoff Time: 4312 milliseconds", Gmail's "[OVERQUOTA] ... bandwidth" / "Account exceeded command or
bandwidth limits". Pure functions, so the table is testable and extendable without a socket.
"""

from __future__ import annotations

import re

_BACKOFF = re.compile(r"Suggested Backoff Time:\s*(\d+)\s*(ms|milli)", re.IGNORECASE)
_THROTTLE = re.compile(
    r"\[(THROTTLED|UNAVAILABLE|LIMIT|INUSE)\]|Server Unavailable|Request is throttled|"
    r"too many (simultaneous|concurrent) connections|exceeded command or bandwidth limits|"
    r"bandwidth limit|try again later",
    re.IGNORECASE,
)
_FULL = re.compile(r"\[OVERQUOTA\]|quota exceeded|mailbox is full|over quota", re.IGNORECASE)


def throttle_delay(text: str | None) -> float | None:
    """None if ``text`` is not a slow-down answer; else the wait it suggests in seconds (0.0: none given)."""
    if not text:
        return None
    suggested = _BACKOFF.search(text)
    if suggested:
        return int(suggested.group(1)) / 1000.0
    if _THROTTLE.search(text) and not _FULL.search(text):
        return 0.0
    if _FULL.search(text) and re.search(r"bandwidth|limits", text, re.IGNORECASE):
        return 0.0  # Gmail's daily bandwidth cap says OVERQUOTA too: pause, don't fail
    return None


def target_full(text: str | None) -> bool:
    """The target refuses because the mailbox is full (not because of one message's size)."""
    return bool(text) and throttle_delay(text) is None and bool(_FULL.search(text or ""))
