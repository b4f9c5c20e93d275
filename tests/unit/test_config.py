import pytest

from mailferry.config import pair_key, parse_endpoint
from mailferry.domain.errors import ConfigError
from mailferry.domain.model import Security


def test_imaps_with_at_in_user_and_default_port():
    ep = parse_endpoint("imaps://alice@new.example@outlook.office365.com")
    assert (ep.user, ep.host, ep.port, ep.security) == (
        "alice@new.example",
        "outlook.office365.com",
        993,
        Security.SSL,
    )


def test_percent_encoded_user_and_explicit_port():
    ep = parse_endpoint("imap+starttls://bob%40corp.example@mail.example:1143")
    assert (ep.user, ep.port, ep.security) == ("bob@corp.example", 1143, Security.STARTTLS)


def test_starttls_default_port_and_authuser():
    ep = parse_endpoint("imap+starttls://u@h", authuser="admin")
    assert ep.port == 143
    assert ep.authuser == "admin"


def test_plaintext_only_to_loopback_unless_allowed():
    assert parse_endpoint("imap://u@127.0.0.1:1143").security is Security.NONE
    assert parse_endpoint("imap://u@localhost").port == 143
    with pytest.raises(ConfigError, match="--allow-plaintext"):
        parse_endpoint("imap://u@mail.example")
    assert parse_endpoint("imap://u@mail.example", allow_plaintext=True).host == "mail.example"


@pytest.mark.parametrize(
    "url",
    ["pop3://u@h", "imaps://h", "imaps://u@", "u@h", "imaps://u@h:notaport", "imaps://u@h:70000"],
)
def test_bad_urls_are_config_errors(url):
    with pytest.raises(ConfigError):
        parse_endpoint(url)


def test_ipv6_host():
    ep = parse_endpoint("imaps://u@[::1]:9993")
    assert (ep.host, ep.port) == ("::1", 9993)
    assert "[::1]:9993" in ep.display()


def test_pair_key_has_no_secrets_and_distinguishes_users():
    a = parse_endpoint("imaps://a@h")
    b = parse_endpoint("imaps://b@h")
    assert pair_key(a, b) != pair_key(b, a)
