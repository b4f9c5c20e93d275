"""The DAV benchmark's own plumbing against the real test servers: a corpus written straight
into Radicale's storage is served like an uploaded one, PUT seeding fills Xandikos, and the
PROPFIND count that judges each tool sees every item (and misses a deleted one)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
davclients = importlib.import_module("davclients")
davcorpus = importlib.import_module("davcorpus")

pytestmark = pytest.mark.integration

CORPUS = davcorpus.DavCorpus(events=40, recurring=5, contacts=12, calendars=2, address_books=2)


def login(server, user, password):
    base = server.url(user).replace(f"{user}@", "").rstrip("/")
    return davclients.Login(base, user, password, server.ca_file)


def test_radicale_serves_what_was_written_into_its_storage(radicale, make_user):
    user, password = make_user(radicale)
    items, size = davclients.seed_radicale(radicale.data_dir / "collections", user, CORPUS)
    assert (items, size > 100_000) == (52, True)
    account = login(radicale, user, password)
    counts = davclients.count_items(account)
    assert counts == {f"/{user}/book0/": 6, f"/{user}/book1/": 6, f"/{user}/cal0/": 20, f"/{user}/cal1/": 20}  # fmt: skip
    first = next(CORPUS.resources())
    with account.client() as client:
        got = client.get(f"/{user}/{first.collection}/{first.name}")
        assert got.status_code == 200
        assert first.uid in got.text
        assert client.delete(f"/{user}/{first.collection}/{first.name}").status_code in {200, 204}
    assert sum(davclients.count_items(account).values()) == 51


def test_xandikos_is_seeded_by_put_and_counted(xandikos, make_user):
    user, password = make_user(xandikos)
    account = login(xandikos, user, password)
    items, _ = davclients.seed_by_put(account, CORPUS, threads=3)
    assert items == 52
    counts = davclients.count_items(account)
    # the corpus's collections, next to the empty defaults Xandikos made at the first login
    assert {href: n for href, n in counts.items() if n} == {
        f"/{user}/calendars/cal0/": 20,
        f"/{user}/calendars/cal1/": 20,
        f"/{user}/contacts/book0/": 6,
        f"/{user}/contacts/book1/": 6,
    }


def test_seeding_with_a_wrong_password_fails_loudly(xandikos, make_user):
    user, _ = make_user(xandikos)
    with pytest.raises(httpx.HTTPStatusError):
        davclients.seed_by_put(login(xandikos, user, "wrong password"), CORPUS, threads=2)
