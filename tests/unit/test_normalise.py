"""Normalised equality for verify: what servers rewrite is ignored, what a user would see is not."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailferry.domain.contentlines import content_lines
from mailferry.domain.normalise import compare_icalendar, compare_vcard
from tests.unit.dav_samples import (
    ALL_DAY,
    ATTACHMENT,
    CALENDARS,
    FLOATING_WITH_ALARM,
    TODO,
    VCARD3,
    VCARD4_GROUP,
    WEEKLY,
)


def reordered(raw: bytes) -> bytes:
    """Each component's properties reversed, every line unfolded: what a server's re-serialiser does."""
    out, block = [], []
    for line in (c.unfolded for c in content_lines(raw)):
        if line.startswith((b"BEGIN:", b"END:")):
            out += reversed(block)
            block = []
            out.append(line)
        else:
            block.append(line)
    return b"".join(line + b"\r\n" for line in out)


def server_rewrites(raw: bytes) -> bytes:
    return (
        raw.replace(b"DTSTAMP:20260101T090000Z", b"DTSTAMP:20261130T174500Z")
        .replace(b"PRODID:-//Example Corp.//Calendar 1.0//EN", b"PRODID:-//Radicale//NONSGML//EN")
        .replace(b"SEQUENCE:2", b"SEQUENCE:5")
    )


@pytest.mark.parametrize("raw", CALENDARS)
def test_order_folding_and_server_stamps_are_ignored(raw):
    target = reordered(server_rewrites(raw))
    assert target != raw
    assert compare_icalendar(raw, target).equal
    assert str(compare_icalendar(raw, target)) == "equal"


def test_the_same_zone_under_another_tzid_is_equal_and_another_rule_is_not():
    renamed = WEEKLY.replace(b"Europe/Berlin", b"W. Europe Standard Time (custom)")
    assert compare_icalendar(WEEKLY, renamed).equal
    wrong_dst = renamed.replace(b"TZOFFSETTO:+0200", b"TZOFFSETTO:+0300")
    found = compare_icalendar(WEEKLY, wrong_dst).differences
    assert (
        "UID weekly-1@example.com: the occurrence at 2026-04-02 08:00:00 UTC is only on the source"
        in found
    )
    assert (
        "UID weekly-1@example.com: the occurrence at 2026-04-02 07:00:00 UTC is only on the target"
        in found
    )


def test_a_lost_exdate_is_reported():
    lost = WEEKLY.replace(b"EXDATE;TZID=Europe/Berlin:20260319T100000\r\n", b"")
    found = compare_icalendar(WEEKLY, lost).differences
    assert found == (
        "event 'Team meeting' (UID weekly-1@example.com): EXDATE '2026-03-19 09:00:00 UTC' is only on the source",
    )


def test_a_lost_override_is_reported_as_its_instance():
    series, _override = WEEKLY.split(
        b"BEGIN:VEVENT\r\nUID:weekly-1@example.com\r\nDTSTAMP:20260101T090000Z\r\nRECURRENCE-ID"
    )
    lost = series + b"END:VCALENDAR\r\n"
    found = compare_icalendar(WEEKLY, lost).differences
    assert found == (
        (
            "event 'Team meeting (moved)' (UID weekly-1@example.com, the instance of "
            "2026-03-26 09:00:00 UTC): only on the source"
        ),
    )


def test_a_moved_override_names_the_property_and_both_values():
    moved = WEEKLY.replace(
        b"DTSTART;TZID=Europe/Berlin:20260327T140000", b"DTSTART;TZID=Europe/Berlin:20260327T160000"
    )
    (found,) = compare_icalendar(WEEKLY, moved).differences
    assert (
        "DTSTART is '2026-03-27 13:00:00 UTC' on the source, '2026-03-27 15:00:00 UTC' on the target"
        in found
    )


def test_all_day_floating_and_utc_times_are_not_confused():
    timed = ALL_DAY.replace(b"DTSTART;VALUE=DATE:20261225", b"DTSTART:20261225T000000Z")
    assert "DTSTART is '2026-12-25' on the source" in str(compare_icalendar(ALL_DAY, timed))
    zoned = FLOATING_WITH_ALARM.replace(b"DTSTART:20260410T070000", b"DTSTART:20260410T070000Z")
    assert "(floating)' on the source" in str(compare_icalendar(FLOATING_WITH_ALARM, zoned))


def test_a_changed_alarm_is_reported():
    earlier = FLOATING_WITH_ALARM.replace(b"TRIGGER:-PT15M", b"TRIGGER:-PT10M")
    assert compare_icalendar(FLOATING_WITH_ALARM, earlier).differences == (
        "event 'Morning run (wherever I am)' (UID floating-1@example.com): the alarms or other inner components differ",
    )


def test_an_attachment_compares_by_its_decoded_content():
    refolded = reordered(ATTACHMENT)  # the base64 on one line instead of two
    assert compare_icalendar(ATTACHMENT, refolded).equal
    other = base64.b64encode(b"Hello, this is another attachment.\n")
    changed = reordered(ATTACHMENT).replace(
        b"SGVsbG8sIHRoaXMgaXMgYW4gaW5saW5lIGF0dGFjaG1lbnQuCg==", other
    )
    assert "ATTACH is" in str(compare_icalendar(ATTACHMENT, changed))


def test_a_task_and_the_schedule_agent_parameter():
    done = TODO.replace(b"STATUS:NEEDS-ACTION", b"STATUS:COMPLETED")
    assert compare_icalendar(TODO, done).differences == (
        "task 'File the tax return' (UID todo-1@example.com): STATUS is 'NEEDS-ACTION' on the source, 'COMPLETED' on the target",
    )
    none = WEEKLY.replace(
        b"ATTENDEE;PARTSTAT=ACCEPTED:", b"ATTENDEE;PARTSTAT=ACCEPTED;SCHEDULE-AGENT=NONE:"
    )
    assert "SCHEDULE-AGENT=NONE" in str(compare_icalendar(WEEKLY, none))


def test_invalid_icalendar_is_a_difference_not_an_exception():
    assert (
        compare_icalendar(b"not a calendar", WEEKLY)
        .differences[0]
        .startswith("the source is not valid iCalendar")
    )
    assert (
        compare_icalendar(WEEKLY, b"not a calendar")
        .differences[0]
        .startswith("the target is not valid iCalendar")
    )


def test_vcard_ignores_rev_prodid_order_and_photo_wrapping():
    target = reordered(VCARD3.replace(b"REV:2026-01-01T09:00:00Z", b"REV:2026-11-30T17:45:00Z"))
    target = target.replace(b"PRODID:-//Apple Inc.//iPhone OS 17.0//EN", b"PRODID:-//Xandikos//EN")
    assert target != VCARD3
    assert compare_vcard(VCARD3, target).equal
    assert compare_vcard(VCARD4_GROUP, reordered(VCARD4_GROUP)).equal


def test_vcard_photo_and_categories_differences_are_worded():
    photo = b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUl\r\n EQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    other = base64.b64encode(b"\x89PNG another picture").decode().encode()
    changed = VCARD3.replace(photo, other).replace(
        b"CATEGORIES:Friends,Work", b"CATEGORIES:Friends"
    )
    found = compare_vcard(VCARD3, changed).differences
    assert "contact 'Alice Example': CATEGORIES 'Friends,Work' is only on the source" in found
    assert "contact 'Alice Example': CATEGORIES 'Friends' is only on the target" in found
    assert any(d.startswith("contact 'Alice Example': PHOTO '70 bytes, SHA-256") for d in found)


def test_vcard4_data_uri_photo_is_compared_decoded():
    picture = base64.b64encode(b"\x89PNG picture").decode()
    card = VCARD4_GROUP.replace(
        b"KIND:group\r\n", f"PHOTO:data:image/png;base64,{picture}\r\n".encode()
    )
    same = card.replace(b"PHOTO:data:image/png;base64,", b"PHOTO:data:image/png;b\r\n ase64,")
    assert compare_vcard(card, same).equal
    other = card.replace(picture.encode(), base64.b64encode(b"\x89PNG picturf"))
    assert "PHOTO '12 bytes" in str(compare_vcard(card, other))


def test_vcard_group_members_and_group_prefixes():
    removed = VCARD4_GROUP.replace(b"MEMBER:urn:uuid:b8767877-b4a1-4c70-9acc-505d3819e519\r\n", b"")
    assert compare_vcard(VCARD4_GROUP, removed).differences == (
        "contact 'Hiking club': MEMBER 'urn:uuid:b8767877-b4a1-4c70-9acc-505d3819e519' is only on the source",
    )
    grouped = VCARD3.replace(b"EMAIL;", b"item1.EMAIL;")
    assert compare_vcard(grouped, grouped.replace(b"item1.", b"ITEM1.")).equal
    assert "item1.EMAIL" in str(compare_vcard(VCARD3, grouped))


def test_invalid_vcard_is_a_difference():
    assert (
        compare_vcard(VCARD3, b"garbage")
        .differences[0]
        .startswith("the target is not a valid vCard")
    )
    assert (
        compare_vcard(b"garbage", VCARD3)
        .differences[0]
        .startswith("the source is not a valid vCard")
    )


def test_an_invalid_property_kept_as_read_compares_equal_to_itself_and_is_named_otherwise():
    broken = WEEKLY.replace(b"RRULE:FREQ=WEEKLY;COUNT=6", b"RRULE:FREQ=SOMETIMES")
    assert compare_icalendar(broken, reordered(broken)).equal
    assert compare_icalendar(WEEKLY, broken).differences == (
        (
            "event 'Team meeting' (UID weekly-1@example.com): RRULE is 'FREQ=WEEKLY;COUNT=6' on the "
            "source, 'FREQ=SOMETIMES (invalid)' on the target"
        ),
    )
    no_start = WEEKLY.replace(b"DTSTART;TZID=Europe/Berlin:20260305T100000", b"DTSTART:garbage")
    assert compare_icalendar(no_start, no_start).equal
    assert "'garbage (invalid)' on the target" in str(compare_icalendar(WEEKLY, no_start))


@st.composite
def _shuffled(draw, raw):
    """``raw`` with each component's properties in a random order and random line ends (CRLF or LF)."""
    out, block = [], []
    for line in (c.unfolded for c in content_lines(raw)):
        if line.startswith((b"BEGIN:", b"END:")):
            out += draw(st.permutations(block))
            block = []
            out.append(line)
        else:
            block.append(line)
    return b"".join(line + draw(st.sampled_from([b"\r\n", b"\n"])) for line in out)


@given(st.sampled_from(CALENDARS).flatmap(lambda raw: st.tuples(st.just(raw), _shuffled(raw))))
def test_any_property_order_compares_equal(pair):
    raw, shuffled = pair
    assert compare_icalendar(raw, shuffled).equal


@given(
    st.sampled_from([VCARD3, VCARD4_GROUP]).flatmap(lambda r: st.tuples(st.just(r), _shuffled(r)))
)
def test_any_vcard_property_order_compares_equal(pair):
    raw, shuffled = pair
    assert compare_vcard(raw, shuffled).equal
