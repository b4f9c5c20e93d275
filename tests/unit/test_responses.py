import pytest

from mailferry.domain.responses import target_full, throttle_delay


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
    assert not target_full("NO [OVERQUOTA] Account exceeded command or bandwidth limits")
    assert not target_full("NO [TOOBIG] too big")
    assert not target_full(None)
