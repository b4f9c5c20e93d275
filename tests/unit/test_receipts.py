"""Read-receipt requests renamed without changing a message's length or anything else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailferry.domain.receipts import RENAMES, header_length, neutralise_receipt_requests


def test_every_rename_keeps_the_length():
    assert all(len(old) == len(new) for old, new in RENAMES.items())
    assert all(not new.lower().startswith(old) for old, new in RENAMES.items())


def test_request_headers_are_renamed_in_crlf_and_lf_messages():
    for eol in (b"\r\n", b"\n"):
        message = eol.join(
            [
                b"From: a@example.org",
                b"Disposition-Notification-To: <a@example.org>",
                b"return-receipt-to:a@example.org",
                b"X-Confirm-Reading-To : a@example.org",
                b"Subject: hi",
                b"",
                b"Disposition-Notification-To: in the body, untouched",
            ]
        )
        out = neutralise_receipt_requests(message)
        assert len(out) == len(message)
        assert b"X-Orig-Disposition-Notif-To: <a@example.org>" in out
        assert b"X-Orig-Receipt-To:a@example.org" in out
        assert b"X-Orig-Confirm-Rd-To : a@example.org" in out
        head, body = out[: header_length(out)], out[header_length(out) :]
        assert b"Disposition-Notification-To" not in head
        assert body.endswith(b"Disposition-Notification-To: in the body, untouched")


def test_lookalikes_and_folded_lines_are_left_alone():
    message = (
        b"X-Disposition-Notification-To: keep\r\n"
        b"Subject: about\r\n Disposition-Notification-To: a folded line\r\n"
        b"Disposition-Notification-Toolong: not the header\r\n\r\nbody"
    )
    assert neutralise_receipt_requests(message) == message


@given(st.binary(max_size=400))
def test_any_bytes_keep_their_length_and_their_body(data):
    out = neutralise_receipt_requests(data)
    assert len(out) == len(data)
    cut = header_length(data)
    assert out[cut:] == data[cut:]
