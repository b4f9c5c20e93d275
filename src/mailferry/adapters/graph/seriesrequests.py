"""The requests of an event series for ``GraphCollections`` (collections.py): its changed and
cancelled occurrences read (``instances`` over ``SERIES_WINDOW``, compared with what its pattern
gives), and written after the series (a changed occurrence PATCHed, a cancelled one DELETEd).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import recurring_ical_events

from mailferry.adapters.graph import events, eventtimes
from mailferry.adapters.graph.recurrence import Unsupported
from mailferry.adapters.graph.session import expect

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mailferry.adapters.graph.session import GraphSession

SERIES_WINDOW = dt.timedelta(days=5 * 366)  # occurrences looked at for exceptions
TEXT_BODIES = {"Prefer": 'outlook.body-content-type="text"'}


class SeriesRequests:
    def __init__(
        self,
        session: GraphSession,
        base: str,
        pages: Callable[..., Iterator[dict[str, Any]]],
    ) -> None:
        self.session, self.base, self.pages = session, base, pages

    def read(self, master: dict[str, Any], floating: bool) -> events.GraphSeries:
        """The event with its changed and cancelled occurrences (a series' instances listed over
        ``SERIES_WINDOW`` from its start, compared with what its pattern gives)."""
        if not master.get("recurrence"):
            return events.GraphSeries(master, {}, (), floating)
        all_day = bool(master.get("isAllDay"))
        expected = _expected(master, floating)
        first = eventtimes.instant(master["start"]) - dt.timedelta(days=1)
        params = {
            "startDateTime": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": (first + SERIES_WINDOW).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "$top": "500",
        }
        seen, changed = set(), {}
        for one in self.pages(f"{self.base}/events/{master['id']}/instances", params, TEXT_BODIES):
            key = events.occurrence_key(one, all_day, floating)
            seen.add(key)
            if one.get("type") == "exception":
                changed[key] = one
        cancelled = tuple(sorted(k for k in expected if k not in seen))
        return events.GraphSeries(master, changed, cancelled, floating)

    def write_occurrences(self, event: dict[str, Any], plan: events.EventPlan) -> None:
        all_day = bool(plan.master.get("isAllDay"))
        for key in [*plan.exceptions, *plan.cancelled]:
            instance = self._instance(event["id"], key, all_day, plan.floating)
            if instance is None and key not in plan.exceptions:
                continue  # cancelled already (an update of a series)
            if instance is None:
                raise Unsupported(f"no occurrence at {key} (RECURRENCE-ID/EXDATE off the series)")
            path = f"{self.base}/events/{instance['id']}"
            if key in plan.exceptions:
                expect(self.session.request("PATCH", path, json=plan.exceptions[key]), 200)
            else:
                expect(self.session.request("DELETE", path), 204)

    def _instance(
        self, graph_id: str, key: str, all_day: bool, floating: bool
    ) -> dict[str, Any] | None:
        day = dt.datetime.fromisoformat(key[:10])
        params = {
            "startDateTime": (day - dt.timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z"),
            "endDateTime": (day + dt.timedelta(days=3)).strftime("%Y-%m-%dT00:00:00Z"),
        }
        for one in self.pages(f"{self.base}/events/{graph_id}/instances", params):
            if events.occurrence_key(one, all_day, floating) == key:
                return one
        return None


def _expected(master: dict[str, Any], floating: bool) -> list[str]:
    plain = events.render_event(events.GraphSeries(master, {}, (), floating), "x")
    first: Any = plain.walk("VEVENT")[0]
    start = first["DTSTART"].dt
    begin = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())
    until = begin + SERIES_WINDOW - dt.timedelta(days=2)
    found = recurring_ical_events.of(plain).between(begin, until)
    return [events.key_of(o["DTSTART"].dt) for o in found]
