"""The DAV benchmark's corpus (benchmarks/davcorpus.py): deterministic, what it claims to hold,
and acceptable to Radicale as it stands (the benchmark writes it into Radicale's storage)."""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import sys
from pathlib import Path

import icalendar
import pytest
import radicale.item
import recurring_ical_events

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
davcorpus = importlib.import_module("davcorpus")

SMALL = davcorpus.DavCorpus(events=400, recurring=40, contacts=30, calendars=3, address_books=2)


def is_series(body: bytes) -> bool:
    return b"RRULE:" in body.split(b"BEGIN:VEVENT", 1)[-1]  # not a VTIMEZONE's rules


@pytest.fixture(scope="module")
def resources():
    return list(SMALL.resources())


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(resources):
    assert [r.body for r in SMALL.resources()] == [r.body for r in resources]
    other = davcorpus.DavCorpus(events=400, recurring=40, contacts=30, seed=7)
    assert next(other.resources()).body != resources[0].body


def test_counts_collections_and_names(resources):
    assert len(resources) == SMALL.items == 430
    assert len({r.uid for r in resources}) == 430
    assert {r.collection for r in resources} == {c.name for c in SMALL.collections()}
    assert sum(is_series(r.body) for r in resources) == 40
    assert sum(b"ATTACH;" in r.body for r in resources) == 2  # one in 250: events 7 and 257


def test_every_line_is_folded_to_75_octets_between_characters(resources):
    for resource in resources:
        for line in resource.body.split(b"\r\n"):
            assert len(line) <= 75, (resource.name, line[:80])
            line.decode()  # a fold never splits a UTF-8 sequence
    assert any(not r.body.isascii() for r in resources)


def test_radicale_accepts_every_item_as_it_stands(resources):
    for resource in resources:
        tag = "VCALENDAR" if resource.name.endswith(".ics") else "VADDRESSBOOK"
        components = radicale.item.read_components(resource.body.decode())
        radicale.item.check_and_sanitize_items(
            components, tag=tag, max_vevent_rrule_occurrence=10_000
        )
        assert len(components) == 1


def test_series_have_their_exdates_and_overrides_where_the_rule_falls(resources):
    series = [r for r in resources if is_series(r.body)]
    for resource in series:
        calendar = icalendar.Calendar.from_ical(resource.body)
        master, *overrides = calendar.walk("VEVENT")
        assert 1 <= len(overrides) <= 3
        exdates = master.get("EXDATE")
        exdates = exdates if isinstance(exdates, list) else [exdates]
        excluded = sum(len(e.dts) for e in exdates)
        assert 1 <= excluded <= 3
        occurrences = recurring_ical_events.of(calendar).between(
            dt.date(2018, 1, 1), dt.date(2100, 1, 1)
        )
        moved = [o for o in occurrences if str(o["SUMMARY"]).startswith("moved occurrence")]
        assert len(moved) == len(overrides), resource.name  # each RECURRENCE-ID is an occurrence
        count = master["RRULE"].get("COUNT")
        if count:
            assert len(occurrences) == count[0] - excluded, resource.name


def test_contacts_carry_a_jpeg_photo_of_5_to_30_kb(resources):
    contacts = [r for r in resources if r.name.endswith(".vcf")]
    versions = set()
    for resource in contacts:
        text = resource.body.replace(b"\r\n ", b"").decode()
        versions.add(text.split("VERSION:")[1][:3])
        photo = text.split("PHOTO", 1)[1].split("\r\n", 1)[0].rsplit(",", 1)[-1].rsplit(":", 1)[-1]
        data = base64.b64decode(photo)
        assert data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9")
        assert 5_000 <= len(data) < 30_000
        assert text.count("EMAIL") >= 1 and "CATEGORIES:" in text and "ADR;" in text
    assert versions == {"3.0", "4.0"}


def test_small_events_leave_out_attachments_alarms_and_attendees():
    small = davcorpus.DavCorpus(events=300, recurring=30, contacts=0, small=True)
    bodies = [r.body for r in small.resources()]
    for body in bodies:
        assert b"ATTACH" not in body and b"VALARM" not in body and b"ATTENDEE" not in body
    assert sum(map(is_series, bodies)) == 30
    assert [c.kind for c in small.collections()] == ["calendar"] * 5
