"""The DAV adapter's edges without a server: URL checks, HTTP errors translated at the session,
discovery through a redirect, and the XML it reads. A fake transport stands in for the network."""

from __future__ import annotations

import httpx
import pytest

from mailferry.adapters.dav import CollectionKind, DavAccount, DavLogin, DavSession, parse_dav_url
from mailferry.adapters.dav.multistatus import parse_multistatus
from mailferry.adapters.dav.session import retry_after
from mailferry.domain.errors import (
    AuthError,
    ConfigError,
    ConnectError,
    FolderError,
    ItemError,
    ServerFaultError,
    TargetFullError,
    ThrottledError,
)

PASSWORD = "s3cret-pw"
URL = parse_dav_url("https://alice@dav.example.org/")


def session(handler) -> DavSession:
    return DavSession(URL, DavLogin("alice", PASSWORD), transport=httpx.MockTransport(handler))


def answering(status: int, headers: dict[str, str] | None = None):
    return lambda _request: httpx.Response(status, headers=headers)


def multistatus(*responses: str) -> bytes:
    return f'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">{"".join(responses)}</d:multistatus>'.encode()


def test_a_url_is_parsed_into_user_host_port_and_path():
    url = parse_dav_url("https://bob%40corp@dav.example.org:8443/dav/")
    assert (url.user, url.host, url.port, url.path) == (
        "bob@corp",
        "dav.example.org",
        8443,
        "/dav/",
    )
    assert url.base == "https://dav.example.org:8443"


def test_every_url_problem_is_reported_and_no_password_echoed():
    with pytest.raises(ConfigError) as bad:
        parse_dav_url(f"http://:{PASSWORD}@dav.example.org/")
    problems = " ".join(bad.value.problems)
    assert "no user" in problems
    assert "http:// only to loopback" in problems
    assert "no password in the URL" in problems
    assert PASSWORD not in str(bad.value)


def test_plain_http_is_allowed_to_loopback():
    assert parse_dav_url("http://alice@127.0.0.1:5232/").scheme == "http"
    assert parse_dav_url("http://alice@[::1]:5232/").base == "http://[::1]:5232"


def test_401_is_an_auth_error_without_the_password():
    with session(answering(401)) as s, pytest.raises(AuthError) as refused:
        s.request("PROPFIND", "/")
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in repr(DavLogin("alice", PASSWORD))


@pytest.mark.parametrize("status", [429, 503])
def test_slow_down_keeps_the_retry_after(status):
    with (
        session(answering(status, {"Retry-After": "7"})) as s,
        pytest.raises(ThrottledError) as slow,
    ):
        s.request("PUT", "/a.ics")
    assert slow.value.wait == 7


def test_retry_after_as_an_http_date():
    assert retry_after("Thu, 01 Jan 2026 00:01:40 GMT", now=1767225600.0) == 100
    assert retry_after("soon") == 0
    assert retry_after(None) == 0


def test_other_5xx_is_a_connect_error_not_a_throttle():
    with session(answering(502)) as s, pytest.raises(ConnectError) as failed:
        s.request("GET", "/")
    assert not isinstance(failed.value, ThrottledError)


RADICALE_507 = {"Content-Type": "text/plain; charset=utf-8"}, b"Insufficient Storage.  Please contact the administrator."  # fmt: skip
XANDIKOS_507 = {"Content-Type": "application/octet-stream"}, b""


@pytest.mark.parametrize("answer", [RADICALE_507, XANDIKOS_507], ids=["radicale", "xandikos"])
def test_507_is_a_full_target_whatever_the_method(answer):
    """What the two servers answer a PUT once their disk is full (tests/integration/
    test_dav_full_disk.py): never a dropped connection to retry, never one item's fault."""
    headers, body = answer
    for method in ("PUT", "MKCALENDAR"):
        handler = lambda _r: httpx.Response(507, headers=headers, content=body)  # noqa: E731
        with session(handler) as s, pytest.raises(TargetFullError) as full:
            s.request(method, "/cal/a.ics")
        assert f"{method} /cal/a.ics: HTTP 507 Insufficient Storage" in str(full.value)
        assert not isinstance(full.value, ConnectError)


def dav_error(condition: str) -> bytes:
    return f'<?xml version="1.0"?><d:error xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">{condition}</d:error>'.encode()  # fmt: skip


def test_a_403_is_a_full_target_only_when_it_names_the_quota():
    """RFC 4331 s6's preconditions say the account or the disk has no room; max-resource-size is
    about one item's size (RFC 4791 s5.3.2.1): the next one may fit, it stays the item's."""
    for body, full in [
        (dav_error("<d:quota-not-exceeded/>"), True),
        (dav_error("<d:sufficient-disk-space/>"), True),
        (dav_error("<c:max-resource-size/>"), False),
        (b"Forbidden", False),
    ]:
        answer = lambda _r, body=body: httpx.Response(403, content=body)  # noqa: E731
        with session(answer) as s, pytest.raises(TargetFullError if full else ItemError) as got:
            DavAccount(s).put("/cal/a.ics", b"BEGIN:VCALENDAR", CollectionKind.CALENDAR)
        assert isinstance(got.value, TargetFullError) is full, body


def test_500_is_a_server_fault_retried_as_a_connect_error_unless_the_caller_knows_better():
    with session(answering(500)) as s, pytest.raises(ServerFaultError) as fault:
        s.request("PUT", "/cal/a.ics")
    assert isinstance(fault.value, ConnectError)
    assert "PUT /cal/a.ics: HTTP 500 Internal Server Error" in str(fault.value)


def test_a_transport_failure_is_a_connect_error():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with session(refuse) as s, pytest.raises(ConnectError):
        s.request("GET", "/")


def test_discovery_follows_the_well_known_redirect_with_propfind():
    seen: list[tuple[str, str]] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path == "/.well-known/caldav":
            return httpx.Response(301, headers={"Location": "/dav/"})
        if request.url.path == "/dav/":
            principal = (
                "<d:current-user-principal><d:href>/dav/alice/</d:href></d:current-user-principal>"
            )
            return httpx.Response(207, content=multistatus(ok("/dav/", principal)))
        homes = (
            '<c:calendar-home-set xmlns:c="urn:ietf:params:xml:ns:caldav"><d:href>/dav/alice/cal/</d:href></c:calendar-home-set>'
            '<a:addressbook-home-set xmlns:a="urn:ietf:params:xml:ns:carddav"><d:href>https://dav.example.org/dav/alice/card/</d:href></a:addressbook-home-set>'
        )
        return httpx.Response(207, content=multistatus(ok("/dav/alice/", homes)))

    homes = DavAccount(session(server)).homes()
    assert (homes.principal, homes.calendar_home, homes.addressbook_home) == (
        "/dav/alice/",
        "/dav/alice/cal/",
        "/dav/alice/card/",
    )
    assert seen == [
        ("PROPFIND", "/.well-known/caldav"),
        ("PROPFIND", "/dav/"),
        ("PROPFIND", "/dav/alice/"),
    ]


def test_a_redirect_to_another_host_is_not_followed():
    def server(request: httpx.Request) -> httpx.Response:
        if request.url.host != "dav.example.org":
            raise AssertionError("left the account's host")
        return httpx.Response(301, headers={"Location": "https://evil.example.net/"})

    with pytest.raises(FolderError, match="no CalDAV/CardDAV service"):
        DavAccount(session(server)).homes()


def ok(href: str, props: str) -> str:
    return f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>{props}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"


def test_multistatus_keeps_found_properties_and_unquotes_hrefs():
    body = multistatus(
        "<d:response><d:href>/cal/a%20b.ics</d:href>"
        '<d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>'
        "<d:propstat><d:prop><d:displayname/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
        "</d:response>",
        "<d:response><d:href>/cal/gone.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>",
    )
    first, gone = parse_multistatus(body)
    assert (first.href, first.text("{DAV:}getetag"), first.status) == ("/cal/a b.ics", '"1"', None)
    assert "{DAV:}displayname" not in first.props
    assert (gone.href, gone.status) == ("/cal/gone.ics", 404)


class Tokens:
    """A token provider (the TokenProvider port): hands out tok-1, tok-2... and counts refreshes."""

    def __init__(self) -> None:
        self.issued = 0
        self.refreshed = 0

    def token(self, force_refresh: bool = False) -> str:
        if force_refresh or not self.issued:
            self.issued += 1
            self.refreshed += force_refresh
        return f"tok-{self.issued}"


def test_a_bearer_token_is_sent_and_refreshed_once_after_a_401():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(401 if len(seen) == 1 else 207, content=multistatus())

    tokens = Tokens()
    login = DavLogin("alice", tokens=tokens)
    with DavSession(URL, login, transport=httpx.MockTransport(handler)) as s:
        assert s.request("PROPFIND", "/").status_code == 207
    assert seen == ["Bearer tok-1", "Bearer tok-2"]
    assert tokens.refreshed == 1
    assert "tok-" not in repr(login)


def test_a_bearer_token_refused_twice_is_an_auth_error():
    tokens = Tokens()
    login = DavLogin("alice", tokens=tokens)
    with (
        DavSession(URL, login, transport=httpx.MockTransport(answering(401))) as s,
        pytest.raises(AuthError) as refused,
    ):
        s.request("PROPFIND", "/")
    assert tokens.refreshed == 1 and "tok-" not in str(refused.value)
