"""GraphSession against the FAKE Graph (sandbox/graph): Graph's limits kept by the client, 429 and
503 waited out and counted, failures translated, the pre-authenticated URL sent without a token.

The FAKE Graph answers a route registered here only (``/users/{id}/mailferrySessionProbe``), so
these tests depend on nothing but the fake's front (tokens, throttling, faults)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailferry.adapters.graph.session import GraphLimits, GraphSession, expect
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import AuthError, ConnectError, ThrottledError
from mailferry.sandbox.graph.server import Answer, Call, FakeGraph, Fault, route

pytestmark = pytest.mark.integration
USER = "alice@contoso.com"
PROBE = f"/users/{USER}/mailferrySessionProbe"


@route("GET", r"/users/(?P<mbx>[^/]+)/mailferrySessionProbe", "Calendars.Read")
def _probe(_fake: FakeGraph, call: Call) -> Answer:
    assert call.mailbox is not None
    return Answer(200, {"mailbox": call.mailbox.upn})


@route("POST", r"/api/mailferrySessionUpload", authorized=False)
def _upload(_fake: FakeGraph, call: Call) -> Answer:
    return Answer(200, {"size": call.size})


class Tokens:
    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.forced = 0

    def token(self, force_refresh: bool = False) -> str:
        if force_refresh and len(self.tokens) > 1:
            self.forced += 1
            self.tokens.pop(0)
        return self.tokens[0]


@pytest.fixture
def fake_graph(tmp_path: Path) -> Iterator[FakeGraph]:
    with FakeGraph(tmp_path / "graph", retry_after=1.0) as fake:
        fake.store.add_mailbox(USER)
        yield fake


def session(fake: FakeGraph, tokens: Tokens, **limits: float) -> GraphSession:
    return GraphSession(
        fake.url,
        USER,
        tokens,
        TlsOptions(fake.ca_file),
        limits=GraphLimits(**limits),  # type: ignore[arg-type]
    )


def test_fake_graph_never_sees_a_fifth_concurrent_request(fake_graph: FakeGraph) -> None:
    fake_graph.delay = 0.05
    tokens = Tokens(fake_graph.issue_token("app", ["Calendars.Read"]))
    with session(fake_graph, tokens) as graph, concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: expect(graph.request("GET", PROBE), 200), range(30)))
    assert answers == [{"mailbox": USER}] * 30
    assert fake_graph.counters.throttled == 0
    assert max(fake_graph.counters.max_in_flight.values()) == 4
    assert graph.stats.requests == 30


def test_fake_graph_429_is_waited_out_and_counted(fake_graph: FakeGraph) -> None:
    tokens = Tokens(fake_graph.issue_token("app", ["Calendars.Read"]))
    fake_graph.fail(Fault("GET", "mailferrySessionProbe", 429, retry_after=1), times=2)
    with session(fake_graph, tokens) as graph:
        assert expect(graph.request("GET", PROBE), 200) == {"mailbox": USER}
    assert graph.stats.throttled == 2
    assert graph.stats.waited == pytest.approx(2.0)


def test_fake_graph_throttling_past_the_retries_is_a_throttled_error(fake_graph: FakeGraph) -> None:
    tokens = Tokens(fake_graph.issue_token("app", ["Calendars.Read"]))
    fake_graph.fail(Fault("GET", "mailferrySessionProbe", 503, retry_after=1), times=5)
    with session(fake_graph, tokens, max_throttled=2) as graph, pytest.raises(ThrottledError):
        graph.request("GET", PROBE)


def test_fake_graph_an_expired_token_is_refreshed_once_then_refused(fake_graph: FakeGraph) -> None:
    fresh = fake_graph.issue_token("app", ["Calendars.Read"])
    tokens = Tokens(fake_graph.issue_token("app", ["Calendars.Read"], lifetime=-1), fresh)
    with session(fake_graph, tokens) as graph:
        assert graph.request("GET", PROBE).status_code == 200
    assert tokens.forced == 1
    with session(fake_graph, Tokens("not-a-token")) as graph, pytest.raises(AuthError, match="401"):
        graph.request("GET", PROBE)


def test_fake_graph_a_missing_permission_is_an_answer_for_the_caller(fake_graph: FakeGraph) -> None:
    tokens = Tokens(fake_graph.issue_token("app", ["Mail.Read"]))
    with session(fake_graph, tokens) as graph:
        response = graph.request("GET", PROBE)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ErrorAccessDenied"


def test_fake_graph_a_dropped_post_is_not_sent_again(fake_graph: FakeGraph) -> None:
    """A POST whose answer was lost may have been carried out: ConnectError, never a resend."""
    fake_graph.fail(Fault("POST", "mailferrySessionUpload", drop_after_commit=True))
    tokens = Tokens(fake_graph.issue_token("app", []))
    with session(fake_graph, tokens) as graph, pytest.raises(ConnectError):
        graph.request(
            "POST", f"{fake_graph.url}/api/mailferrySessionUpload", json={"a": 1}, authorized=False
        )
    assert fake_graph.counters.calls["POST /api/mailferrySessionUpload\\Z"] == 1


def test_fake_graph_a_pre_authenticated_url_gets_no_token(fake_graph: FakeGraph) -> None:
    tokens = Tokens(fake_graph.issue_token("app", []))
    with session(fake_graph, tokens) as graph:
        url = f"{fake_graph.url}/api/mailferrySessionUpload"
        assert expect(graph.request("POST", url, json={"data": "x" * 100}, authorized=False), 200)
        assert graph.request("POST", url, json={"data": 1}).status_code == 400  # with a token


def test_fake_graph_uploads_are_paced_under_the_window(fake_graph: FakeGraph) -> None:
    """150 MB per 5 minutes, scaled down: 3 uploads of ~400 bytes in a 1,000-byte, 1 s window."""
    tokens = Tokens(fake_graph.issue_token("app", []))
    fake_graph.upload_bytes, fake_graph.upload_window = 1000, 1.0
    url = f"{fake_graph.url}/api/mailferrySessionUpload"
    with session(fake_graph, tokens, upload_bytes=1000, upload_window=1.0) as graph:
        for _ in range(3):
            expect(graph.request("POST", url, json={"data": "x" * 380}, authorized=False), 200)
    assert fake_graph.counters.throttled == 0  # the client waited before the fake had to refuse
    assert graph.stats.paced >= 0.5
