"""What every collection pass of one account pair shares, and what it writes to the target.

``Payloads`` is the one place where item bytes change (issue #13 rule 3): ORGANIZER/ATTENDEE
get ``SCHEDULE-AGENT=CLIENT``, or are parked as X- properties for a target known to mail
attendees whatever SCHEDULE-AGENT says. It also refuses, before any upload, what the target
collection would refuse: an item over its max-resource-size, a component it does not hold.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum

from mailferry.domain.davmodel import CollectionInfo, CollectionKind
from mailferry.domain.davreport import DavSummary
from mailferry.domain.items import ComponentKind, identify
from mailferry.domain.ports import CollectionAccount, ItemStateStore
from mailferry.domain.scheduling import park_attendees, schedule_by_client
from mailferry.service.progress import NoProgress, Progress
from mailferry.service.resilience import RetryPolicy


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


def attendee_mode(wanted: AttendeeMode, server: str | None) -> AttendeeMode:
    if wanted is not AttendeeMode.AUTO:
        return wanted
    if server and any(name in server for name in HONOUR_SCHEDULE_AGENT):
        return AttendeeMode.CLIENT
    return AttendeeMode.PARK


@dataclass
class Payloads:
    mode: AttendeeMode
    summary: DavSummary
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prepare(self, target: CollectionInfo, data: bytes) -> bytes | str:
        """The bytes to PUT into ``target``, or the reason the item cannot go there."""
        if target.kind is CollectionKind.CALENDAR:
            component = identify(data).component
            accepted = target.components
            if accepted and component is not ComponentKind.UNKNOWN and component not in accepted:
                return f"the target calendar holds only {', '.join(accepted)}, not {component}"
            rewrite = park_attendees if self.mode is AttendeeMode.PARK else schedule_by_client
            rewritten = rewrite(data)
            if rewritten.changed:
                with self._lock:
                    self.summary.scheduling_changed += 1
                data = rewritten.raw
        limit = target.max_resource_size
        if limit is not None and len(data) > limit:
            return f"{len(data)} bytes: over the target's max-resource-size of {limit} bytes"
        return data


@dataclass
class PassContext:
    source: CollectionAccount
    target: CollectionAccount
    state: ItemStateStore
    pair: str
    summary: DavSummary
    payloads: Payloads
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 4
    dry_run: bool = False
    progress: Progress = field(default_factory=NoProgress)
    stop: threading.Event = field(default_factory=threading.Event)

    def stopped(self) -> bool:
        return self.stop.is_set()
