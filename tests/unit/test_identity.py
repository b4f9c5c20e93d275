import datetime as dt

from mailferry.domain.identity import epoch, identity, normalise_message_id
from mailferry.domain.model import MessageMeta

WHEN = dt.datetime(2020, 5, 1, 12, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def test_message_id_is_unfolded_and_stripped():
    raw = b"Message-ID:\r\n <abc.123@example.com>\r\n\r\n"
    assert normalise_message_id(raw) == "<abc.123@example.com>"


def test_message_id_header_name_is_case_insensitive_and_value_case_sensitive():
    assert normalise_message_id(b"message-id: <AbC@x>\r\n") == "<AbC@x>"


def test_missing_or_empty_message_id_is_none():
    assert normalise_message_id(None) is None
    assert normalise_message_id(b"\r\n") is None
    assert normalise_message_id(b"Message-ID:   \r\n") is None


def test_message_id_without_angle_brackets_is_kept():
    assert normalise_message_id(b"Message-Id: bare@id\r\n") == "bare@id"


def test_identity_prefers_message_id_then_hash():
    with_id = MessageMeta(1, frozenset(), WHEN, 10, "<a@b>")
    assert identity(with_id) == ("mid", "<a@b>", epoch(WHEN), 10)
    hashed = MessageMeta(2, frozenset(), WHEN, 10, None, "f00")
    assert identity(hashed) == ("sha", "f00")
    assert identity(MessageMeta(3, frozenset(), WHEN, 10)) is None


def test_epoch_compares_instants_not_wall_clocks():
    utc = WHEN.astimezone(dt.UTC)
    assert epoch(utc) == epoch(WHEN)
