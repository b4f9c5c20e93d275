"""What a server's words mean for us: slow down, mailbox full, or a refusal of one message.

Servers say "slow down" in many dialects: RFC 5530 codes ([THROTTLED] is not standard but common,
[UNAVAILABLE], [LIMIT]), Exchange Online's "Server Unavailable. 15" and "Request is throttled. Suggested
Backoff Time: 4312 milliseconds", Gmail's "[OVERQUOTA] ... bandwidth" / "Account exceeded command or
bandwidth limits". Pure functions, so the table is testable and extendable without a socket.

Some slow-down answers are *daily caps*: Gmail counts IMAP bandwidth per day (2,500 MB down, 500 MB
up) and, once over, refuses with "[OVERQUOTA] Account exceeded command or bandwidth limits" for hours.
Retrying in seconds only burns the retry budget, so such an answer is marked ``cap`` and the run
pauses for a long while instead (see ``service/migrate.py``).
"""

from __future__ import annotations

import re

from mailferry.domain.errors import ThrottledError

_BACKOFF = re.compile(r"Suggested Backoff Time:\s*(\d+)\s*(ms|milli)", re.IGNORECASE)
_THROTTLE = re.compile(
    r"\[(THROTTLED|UNAVAILABLE|LIMIT|INUSE)\]|Server Unavailable|Request is throttled|"
    r"too many (simultaneous|concurrent) connections|exceeded command or bandwidth limits|"
    r"bandwidth limit|try again later",
    re.IGNORECASE,
)
_TOOBIG = re.compile(r"\[TOOBIG\]", re.IGNORECASE)
_FULL = re.compile(
    r"\[OVERQUOTA\]|quota exceeded|mailbox is full|over quota|"
    r"not enough disk space|no space left on device",  # a server whose own disk is full
    re.IGNORECASE,
)
_CAP = re.compile(
    r"exceeded (?:command or )?bandwidth limits?|bandwidth limit|"
    r"daily (?:download|upload|bandwidth|transfer) (?:limit|cap|quota)",
    re.IGNORECASE,
)


def throttle_delay(text: str | None) -> float | None:
    """None if ``text`` is not a slow-down answer; else the wait it suggests in seconds (0.0: none given)."""
    if not text or _TOOBIG.search(text):  # about one message, whatever else it says
        return None
    suggested = _BACKOFF.search(text)
    if suggested:
        return int(suggested.group(1)) / 1000.0
    if _THROTTLE.search(text) and not _FULL.search(text):
        return 0.0
    if _FULL.search(text) and re.search(r"bandwidth|limits", text, re.IGNORECASE):
        return 0.0  # Gmail's daily bandwidth cap says OVERQUOTA too: pause, don't fail
    return None


# The server blames itself (RFC 5530 SERVERBUG; Dovecot's words with it, and Cyrus's): no fault of
# the message's. Dovecot answers so when its disk is full.
_SERVER_FAULT = re.compile(r"\[SERVERBUG\]|Internal error occurred|System I/O error", re.IGNORECASE)


def server_fault(text: str | None) -> bool:
    """The target refused by a fault of its own, not of the message's."""
    return bool(text) and bool(_SERVER_FAULT.search(text or ""))


def target_full(text: str | None) -> bool:
    """The target refuses because the mailbox is full (not because of one message's size)."""
    return bool(text) and throttle_delay(text) is None and bool(_FULL.search(text or ""))


def daily_cap(text: str | None) -> bool:
    """The server refuses because a daily bandwidth or command cap is reached (lifts in hours)."""
    return throttle_delay(text) is not None and bool(_CAP.search(text or ""))


def slow_down(text: str | None, what: str) -> ThrottledError | None:
    """The error for a slow-down answer (``what`` says who asks, e.g. "server asks to slow down"),
    or None when ``text`` is no such answer."""
    wait = throttle_delay(text)
    if wait is None:
        return None
    return ThrottledError(f"{what}: {text}", wait, cap=daily_cap(text))
