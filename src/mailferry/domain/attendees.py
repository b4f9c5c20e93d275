"""Which way a meeting's ORGANIZER and ATTENDEE lines are written to the target (``--attendees``),
so that no server sends an invitation because of a migration (scheduling.py rewrites the bytes).
Apart from the collection machinery so that ``mailferry sync`` offers the option without it."""

from __future__ import annotations

from enum import StrEnum


class AttendeeMode(StrEnum):
    """How ORGANIZER/ATTENDEE are written (``--attendees``)."""

    AUTO = "auto"  # CLIENT on a target known to honour SCHEDULE-AGENT, else PARK
    CLIENT = "client"  # SCHEDULE-AGENT=CLIENT (RFC 6638 s7.1): the server sends nothing
    PARK = "park"  # renamed X-MAILFERRY-ORGANIZER / X-MAILFERRY-ATTENDEE: no server schedules them


# Servers whose implicit scheduling honours SCHEDULE-AGENT=CLIENT by their documentation (SabreDAV
# and so Nextcloud/ownCloud, Cyrus/Fastmail, Apple's CalendarServer), matched against the Server
# (and X-Sabre-Version) headers. Not tested here: the two servers that run here, Radicale and
# Xandikos, both mail attendees whatever SCHEDULE-AGENT says (docs/dav-servers.md), and neither
# names itself in a header. Every other target gets its meetings parked: nothing can be sent.
HONOUR_SCHEDULE_AGENT = ("sabre", "cyrus", "calendarserver")


# Targets that mail attendees whatever the client says, and offer no way to store a meeting
# silently: Microsoft 365 through Graph (adapters/graph/collections.py refuses ORGANIZER/ATTENDEE).
# Their meetings are always parked, whatever --attendees asks.
ALWAYS_PARK = ("microsoft-graph",)


def attendee_mode(wanted: AttendeeMode, server: str | None) -> AttendeeMode:
    if server in ALWAYS_PARK:
        return AttendeeMode.PARK
    if wanted is not AttendeeMode.AUTO:
        return wanted
    if server and any(name in server for name in HONOUR_SCHEDULE_AGENT):
        return AttendeeMode.CLIENT
    return AttendeeMode.PARK
