"""iCalendar times <-> Graph's ``dateTimeTimeZone`` (learn.microsoft.com/graph/api/resources/
datetimetimezone): a wall clock and a zone name, Windows (``W. Europe Standard Time``) or UTC.

    DATE (all-day)          midnight, ``UTC`` (Graph: an all-day event starts and ends at
                            midnight of one zone); read back as a DATE whatever the zone
    floating                the same wall clock in ``UTC``, the event marked floating (our
                            extended property): read back floating
    TZID a Windows zone     the wall clock in that zone (domain/windowszones.py: same instants)
    matches
    UTC, or a TZID no       the UTC instant (kept)
    Windows zone matches
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from mailferry.domain.windowszones import iana_of, windows_of

MIDNIGHT = dt.time()


@dataclass(frozen=True)
class GraphTime:
    value: dict[str, str]  # {"dateTime", "timeZone"}
    all_day: bool = False
    floating: bool = False
    zoned: bool = True  # False: a TZID Windows cannot hold, written as its UTC instant


def to_graph(value: dt.date | dt.datetime, tzid: str | None) -> GraphTime:
    if not isinstance(value, dt.datetime):
        return GraphTime(_dtz(dt.datetime.combine(value, MIDNIGHT), "UTC"), all_day=True)
    if value.tzinfo is None:
        return GraphTime(_dtz(value, "UTC"), floating=True)
    windows = _windows(value, tzid)
    if windows is None:
        instant = value.astimezone(dt.UTC).replace(tzinfo=None)
        return GraphTime(_dtz(instant, "UTC"), zoned=value.utcoffset() == dt.timedelta(0))
    return GraphTime(_dtz(value.replace(tzinfo=None), windows))


def _windows(value: dt.datetime, tzid: str | None) -> str | None:
    if value.utcoffset() == dt.timedelta(0) and (tzid is None or tzid.upper() in {"UTC", "Z"}):
        return "UTC"
    key = getattr(value.tzinfo, "key", None)
    for name in (tzid, key):
        if name and iana_of(name) is not None and name == iana_of(name):  # an IANA name
            found = windows_of(name)
            if found is not None:
                return found
        elif name and iana_of(name) is not None:  # a Windows name already
            return name
    return None


def _dtz(wall: dt.datetime, zone: str) -> dict[str, str]:
    return {"dateTime": wall.replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": zone}


def zone_of(name: str | None) -> dt.tzinfo:
    """The tzinfo of a Graph zone name (Windows or IANA); UTC when unknown (a custom zone)."""
    iana = iana_of(name) if name else None
    if iana is None or iana == "UTC":
        return dt.UTC
    return zoneinfo.ZoneInfo(iana)


def wall_of(value: dict[str, Any]) -> dt.datetime:
    text = str(value["dateTime"]).rstrip("Z")
    if "." in text:
        text = text.split(".", 1)[0]
    return dt.datetime.fromisoformat(text)


def instant(value: dict[str, Any]) -> dt.datetime:
    """The UTC instant a ``dateTimeTimeZone`` names."""
    return wall_of(value).replace(tzinfo=zone_of(value.get("timeZone"))).astimezone(dt.UTC)


def from_graph(
    value: dict[str, Any], zone: dt.tzinfo, *, all_day: bool, floating: bool
) -> dt.date | dt.datetime:
    """The iCalendar value of a Graph time: a DATE, a floating time, or a time in ``zone``."""
    wall = wall_of(value)
    if all_day:
        if wall.time() == MIDNIGHT:
            return wall.date()
        return instant(value).astimezone(zone).date()
    if floating:
        return wall
    return instant(value).astimezone(zone)


def iana_name(zone: dt.tzinfo) -> str:
    return getattr(zone, "key", "UTC")


def graph_zone(tz_name: str | None) -> str:
    """What ``recurrenceTimeZone`` says for a series written in ``tz_name`` (a Windows name)."""
    return tz_name or "UTC"
