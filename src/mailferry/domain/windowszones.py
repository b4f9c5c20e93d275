"""Windows time zone names (what Exchange and Graph speak) <-> IANA names (what iCalendar speaks).

The table is CLDR's ``windowsZones.xml`` (territory 001: the primary IANA zone of each Windows
zone) as icalendar ships it: ``icalendar.timezone.windows_to_olson.WINDOWS_TO_OLSON`` (generated
from unicode-org/cldr, its version and date in that module). We do not keep our own copy.

IANA -> Windows: the zone's own entry when it is a primary one; else the Windows zone whose
primary zone gives the same UTC offset at every hour from ``CHECK_FROM`` to ``CHECK_TO`` (Berlin
and Paris, say): an event written there never lands at another instant. A zone no Windows zone
matches has no Windows name (``None``): the caller writes UTC, keeping the instant.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z", "Etc/Zulu", "Zulu", "Etc/UCT"})
CHECK_FROM = 2007  # the US rules of today; years before are compared only where they coincide
CHECK_TO = 2037
_PROBES = tuple(dt.datetime(year, month, 15, 12, tzinfo=dt.UTC) for year in (2010, 2024) for month in (1, 7))  # fmt: skip

OLSON_TO_WINDOWS = {olson: windows for windows, olson in WINDOWS_TO_OLSON.items()}


def iana_of(windows: str) -> str | None:
    """The IANA zone of a Windows zone name (an IANA name given instead is returned as it is)."""
    if windows in WINDOWS_TO_OLSON:
        return WINDOWS_TO_OLSON[windows]
    if windows == "UTC" or windows in UTC_NAMES:
        return "UTC"
    return windows if _zone(windows) is not None else None


@functools.lru_cache(maxsize=512)
def windows_of(iana: str) -> str | None:
    """The Windows zone that keeps every instant of ``iana``, or None (see the module docstring)."""
    if iana in UTC_NAMES:
        return "UTC"
    if iana in OLSON_TO_WINDOWS:
        return OLSON_TO_WINDOWS[iana]
    zone = _zone(iana)
    if zone is None:
        return None
    for windows, olson in sorted(WINDOWS_TO_OLSON.items()):
        other = _zone(olson)
        if other is not None and _same_offsets(zone, other):
            return windows
    return None


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _same_offsets(left: dt.tzinfo, right: dt.tzinfo) -> bool:
    if any(p.astimezone(left).utcoffset() != p.astimezone(right).utcoffset() for p in _PROBES):
        return False
    hour = dt.timedelta(hours=1)
    when = dt.datetime(CHECK_FROM, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(CHECK_TO, 12, 31, tzinfo=dt.UTC)
    while when < end:
        if when.astimezone(left).utcoffset() != when.astimezone(right).utcoffset():
            return False
        when += hour
    return True
