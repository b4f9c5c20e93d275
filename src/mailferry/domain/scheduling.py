"""No invitation is ever sent because of a migration (RFC 6638, SCHEDULE-AGENT).

A server that schedules implicitly sends invitations, updates and cancellations when it stores an event
whose ORGANIZER or ATTENDEE properties change. ``SCHEDULE-AGENT=CLIENT`` on each of them tells it that the
client takes care of scheduling, so the server sends nothing.

The bytes are rewritten textually, content line by content line: only the ORGANIZER and ATTENDEE lines
that lack the parameter are unfolded, changed and refolded; every other byte stays as it was read
(re-serialising with a library would reorder properties and re-escape values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mailferry.domain.contentlines import Parameter, Property, content_lines, fold, parse_property

SCHEDULED = frozenset({b"ORGANIZER", b"ATTENDEE"})
PARAM = b"SCHEDULE-AGENT"
CLIENT = b"CLIENT"


@dataclass(frozen=True)
class Rewritten:
    raw: bytes
    changed: bool = False


def _rewrite(
    raw: bytes,
    change: Callable[[Property], Property | None],
    names: Iterable[bytes] = SCHEDULED,
) -> Rewritten:
    out: list[bytes] = []
    changed = False
    for content in content_lines(raw):
        prop = parse_property(content.unfolded)
        new = None
        if prop is not None and prop.name.upper() in names:
            new = change(prop)
        if new is None:
            out.extend(content.physical)
            continue
        changed = True
        folded = fold(new.serialise(), content.ending)
        out.append(folded if content.ending else folded.rstrip(b"\r\n"))
    return Rewritten(b"".join(out), changed=True) if changed else Rewritten(raw)


def _agent(prop: Property) -> Parameter | None:
    return next((p for p in prop.params if p.name == PARAM), None)


def _to_client(prop: Property) -> Property | None:
    agent = _agent(prop)
    wanted = Parameter(PARAM, b";" + PARAM + b"=" + CLIENT)
    if agent is None:
        return Property(prop.name, (*prop.params, wanted), prop.value)
    value = agent.text.split(b"=", 1)[-1].strip(b'"').upper()
    if value in {CLIENT, b"NONE"}:  # NONE: nobody schedules, which sends nothing either
        return None
    params = tuple(wanted if p is agent else p for p in prop.params)
    return Property(prop.name, params, prop.value)


def _without_client(prop: Property) -> Property | None:
    agent = _agent(prop)
    if agent is None or agent.text.split(b"=", 1)[-1].strip(b'"').upper() != CLIENT:
        return None
    return Property(prop.name, tuple(p for p in prop.params if p is not agent), prop.value)


PARKED = {b"ORGANIZER": b"X-MAILFERRY-ORGANIZER", b"ATTENDEE": b"X-MAILFERRY-ATTENDEE"}
UNPARKED = {v: k for k, v in PARKED.items()}


def _rename(names: dict[bytes, bytes]) -> Callable[[Property], Property | None]:
    def change(prop: Property) -> Property | None:
        new = names.get(prop.name.upper())
        return None if new is None else Property(new, prop.params, prop.value)

    return change


def park_attendees(raw: bytes) -> Rewritten:
    """ORGANIZER and ATTENDEE renamed X-MAILFERRY-ORGANIZER / X-MAILFERRY-ATTENDEE, values kept.

    For a target that mails attendees whatever SCHEDULE-AGENT says (docs/dav-servers.md): no
    server schedules an X- property, and the meeting data stays in the event, to be restored
    (``unpark_attendees``) once the target is safe.
    """
    return _rewrite(raw, _rename(PARKED), PARKED.keys())


def unpark_attendees(raw: bytes) -> Rewritten:
    """The inverse of ``park_attendees`` (for ``verify``, and to restore the meetings later)."""
    return _rewrite(raw, _rename(UNPARKED), UNPARKED.keys())


def schedule_by_client(raw: bytes) -> Rewritten:
    """``raw`` with SCHEDULE-AGENT=CLIENT on every ORGANIZER and ATTENDEE (SERVER becomes CLIENT)."""
    return _rewrite(raw, _to_client)


def unschedule_by_client(raw: bytes) -> Rewritten:
    """The inverse, for comparison: every SCHEDULE-AGENT=CLIENT parameter taken off again."""
    return _rewrite(raw, _without_client)
