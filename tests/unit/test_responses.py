import pytest

from mailferry.domain.responses import daily_cap, slow_down, target_full, throttle_delay


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("NO [THROTTLED] slow down", 0.0),
        ("NO [UNAVAILABLE] try later", 0.0),
        ("BYE Server Unavailable. 15", 0.0),
        ("NO Request is throttled. Suggested Backoff Time: 4312 milliseconds", 4.312),
        ("NO [OVERQUOTA] Account exceeded command or bandwidth limits", 0.0),
        ("NO [LIMIT] too many", 0.0),
        ("NO [TOOBIG] message too large", None),
        ("NO [OVERQUOTA] Quota exceeded (mailbox for user is full)", None),
        ("NO Invalid message", None),
        (None, None),
    ],
)
def test_throttle_delay(text, delay):
    assert throttle_delay(text) == delay


def test_target_full_is_not_bandwidth_or_size():
    assert target_full("NO [OVERQUOTA] Quota exceeded (mailbox for user is full)")
    assert target_full("NO Not enough disk space")  # a server whose own disk is full
    assert target_full("NO [SERVERBUG] write(/var/mail/x): No space left on device")
    assert not target_full("NO [OVERQUOTA] Account exceeded command or bandwidth limits")
    assert not target_full("NO [TOOBIG] too big")
    assert not target_full(None)


@pytest.mark.parametrize(
    ("text", "cap"),
    [
        ("NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)", True),
        ("BYE [ALERT] Account exceeded command or bandwidth limits", True),
        ("NO [UNAVAILABLE] daily download limit reached, try again later", True),
        ("NO [THROTTLED] slow down", False),
        ("NO Request is throttled. Suggested Backoff Time: 4312 milliseconds", False),
        ("NO [OVERQUOTA] Quota exceeded (mailbox for user is full)", False),
        ("NO [TOOBIG] bandwidth limit of this message", False),
        (None, False),
    ],
)
def test_daily_cap(text, cap):
    assert daily_cap(text) is cap


def test_slow_down_error_carries_wait_and_cap():
    error = slow_down("NO Request is throttled. Suggested Backoff Time: 250 milliseconds", "target")
    assert error is not None
    assert (error.wait, error.cap) == (0.25, False)
    assert str(error).startswith("target: NO Request is throttled")
    capped = slow_down("NO [OVERQUOTA] Account exceeded command or bandwidth limits", "source")
    assert capped is not None
    assert capped.cap
    assert slow_down("NO [TOOBIG] too big", "target") is None
