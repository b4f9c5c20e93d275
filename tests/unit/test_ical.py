"""SCHEDULE-AGENT=CLIENT on every ORGANIZER and ATTENDEE, nothing else changed (RFC 6638)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailferry.domain.contentlines import content_lines, fold, parse_property
from mailferry.domain.normalise import compare_icalendar
from mailferry.domain.scheduling import schedule_by_client, unschedule_by_client
from tests.unit.dav_samples import ALL_DAY, ATTACHMENT, CALENDARS, TODO, WEEKLY, crlf


def logical(raw: bytes) -> list[bytes]:
    return [line.unfolded for line in content_lines(raw)]


def scheduled(line: bytes) -> bool:
    return re.match(rb"(?i)(ORGANIZER|ATTENDEE)[;:]", line) is not None


def test_weekly_series_gets_client_agent_on_each_organizer_and_attendee_only():
    result = schedule_by_client(WEEKLY)
    assert result.changed
    before, after = logical(WEEKLY), logical(result.raw)
    assert len(before) == len(after)
    touched = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(touched) == 5  # two ORGANIZERs, three ATTENDEEs
    for old, new in touched:
        assert scheduled(old)
        prop = parse_property(old)
        params = b"".join(p.text for p in prop.params)
        assert new == prop.name + params + b";SCHEDULE-AGENT=CLIENT:" + prop.value


def test_untouched_lines_keep_their_exact_bytes_and_folding():
    result = schedule_by_client(WEEKLY)
    kept = [c.physical for c in content_lines(WEEKLY) if not scheduled(c.unfolded)]
    after = [c.physical for c in content_lines(result.raw) if not scheduled(c.unfolded)]
    assert kept == after
    assert b"DESCRIPTION:Agenda: status\\, plans\\; questions\\nSecond line\r\n" in result.raw


def test_touched_lines_are_refolded_at_75_octets_without_splitting_utf8():
    result = schedule_by_client(WEEKLY)
    for physical in result.raw.split(b"\r\n"):
        assert len(physical) <= 75
        physical.decode("utf-8")  # never cut inside a multi-byte character
    assert result.raw.endswith(b"END:VCALENDAR\r\n")


def test_quoted_parameter_values_with_colons_and_semicolons_are_respected():
    raw = crlf(
        'BEGIN:VEVENT\nATTENDEE;CN="a:b;c";DELEGATED-FROM="mailto:x@y":mailto:z@y\nEND:VEVENT'
    )
    result = schedule_by_client(raw)
    assert logical(result.raw)[1] == (
        b'ATTENDEE;CN="a:b;c";DELEGATED-FROM="mailto:x@y";SCHEDULE-AGENT=CLIENT:mailto:z@y'
    )


def test_server_becomes_client_and_client_or_none_are_left_alone():
    raw = crlf(
        "BEGIN:VEVENT\nORGANIZER;SCHEDULE-AGENT=SERVER:mailto:a@x\n"
        "ATTENDEE;SCHEDULE-AGENT=NONE:mailto:b@x\nattendee;schedule-agent=client:mailto:c@x\nEND:VEVENT"
    )
    result = schedule_by_client(raw)
    assert logical(result.raw)[1] == b"ORGANIZER;SCHEDULE-AGENT=CLIENT:mailto:a@x"
    assert logical(result.raw)[2:4] == logical(raw)[2:4]


@pytest.mark.parametrize("raw", [ALL_DAY, ATTACHMENT, TODO])
def test_objects_without_organizer_are_returned_as_the_same_bytes(raw):
    result = schedule_by_client(raw)
    assert not result.changed
    assert result.raw is raw


def test_a_last_line_without_line_end_and_lf_only_files_keep_their_line_ends():
    raw = b"BEGIN:VEVENT\nATTENDEE:mailto:a@x\nEND:VEVENT"
    assert schedule_by_client(raw).raw == (
        b"BEGIN:VEVENT\nATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:a@x\nEND:VEVENT"
    )
    assert schedule_by_client(b"ATTENDEE:mailto:a@x").raw == (
        b"ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:a@x"
    )


def test_the_inverse_takes_the_parameter_off_again():
    back = unschedule_by_client(schedule_by_client(WEEKLY).raw)
    assert back.changed
    assert logical(back.raw) == logical(WEEKLY)
    assert not unschedule_by_client(WEEKLY).changed


def test_malformed_lines_are_left_as_they_are():
    raw = crlf("BEGIN:VEVENT\nATTENDEE;CN=no value\nEND:VEVENT")
    assert parse_property(b"ATTENDEE;CN=no value") is None
    assert schedule_by_client(raw).raw == raw


def test_fold_never_exceeds_75_octets():
    text = ("ATTENDEE;CN=" + "ü" * 80 + ":mailto:a@x").encode()
    folded = fold(text, b"\r\n")
    pieces = folded.split(b"\r\n")[:-1]
    assert all(len(p) <= 75 for p in pieces)
    assert b"".join([pieces[0], *(p[1:] for p in pieces[1:])]) == text


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=600))
def test_fold_cuts_each_line_as_late_as_whole_characters_allow(text: str) -> None:
    """Every piece within 75 octets (the space included), valid UTF-8 on its own, and as long as
    the next character allows: the folding pstcards had of its own, now this one."""
    pieces = fold(text.encode(), b"\r\n").split(b"\r\n")[:-1]
    bodies = [pieces[0], *(p[1:] for p in pieces[1:])]
    assert all(p.startswith(b" ") for p in pieces[1:])
    assert "".join(b.decode() for b in bodies) == text
    for piece, after in zip(pieces, [*bodies[1:], b""], strict=True):
        assert len(piece) <= 75
        if after:  # the next character would not have fitted
            assert len(piece) + len(after.decode()[0].encode()) > 75


# Hypothesis: random calendars made of sample lines, random parameters, random folding.
_names = st.sampled_from(["ORGANIZER", "ATTENDEE", "attendee", "SUMMARY", "LOCATION", "X-ATTENDEE"])
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"'), max_size=90
)
_param = st.builds(lambda k, v: f';{k}="{v}"', st.sampled_from(["CN", "ROLE", "X-Y"]), _text)


@st.composite
def _calendar(draw):
    lines = ["BEGIN:VCALENDAR", "BEGIN:VEVENT", "UID:x@example.com", "DTSTART:20260101T100000Z"]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(_names)
        params = "".join(draw(st.lists(_param, max_size=3)))
        value = "mailto:someone@example.com" if "ATTENDEE" in name.upper() else draw(_text)
        lines.append(f"{name}{params}:{value}".replace("\\", "\\\\").replace(",", "\\,"))
    lines += ["END:VEVENT", "END:VCALENDAR"]
    out = b""
    for line in lines:
        out += fold(line.encode(), b"\r\n") if draw(st.booleans()) else line.encode() + b"\r\n"
    return out


@given(_calendar())
def test_rewriting_is_idempotent(raw):
    once = schedule_by_client(raw)
    twice = schedule_by_client(once.raw)
    assert not twice.changed
    assert twice.raw == once.raw


@given(_calendar())
def test_rewriting_changes_only_organizer_and_attendee_lines(raw):
    before, after = logical(raw), logical(schedule_by_client(raw).raw)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        if not scheduled(old):
            assert old == new
        else:
            assert b"SCHEDULE-AGENT=CLIENT" in new.upper()
    untouched = [c.physical for c in content_lines(raw) if not scheduled(c.unfolded)]
    assert untouched == [
        c.physical for c in content_lines(schedule_by_client(raw).raw) if not scheduled(c.unfolded)
    ]


@given(_calendar())
def test_rewritten_bytes_compare_equal(raw):
    assert compare_icalendar(raw, schedule_by_client(raw).raw).equal


@pytest.mark.parametrize("raw", CALENDARS)
def test_every_sample_compares_equal_after_rewriting(raw):
    assert compare_icalendar(raw, schedule_by_client(raw).raw).equal
