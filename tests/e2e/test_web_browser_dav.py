"""Calendars and contacts in the dashboard, in real headless Chromium against `mailferry serve`:
endpoints with DAV URLs added through the form (Dovecot + Radicale, Dovecot + Xandikos), a batch
created and started from the pages, the mailbox row and page showing the items that arrived."""

from __future__ import annotations

import pytest

from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from tests.e2e.test_web_browser import (  # noqa: F401 - env, page, server: fixtures
    ADMIN_PASSWORD,
    CHROMIUM,
    env,
    page,
    playwright_api,
    server,
    shot,
)
from tests.integration.test_batches_dav import seed_dav

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_dav_endpoints_and_items_in_the_browser(
    server,  # noqa: F811 - the fixture
    page,  # noqa: F811 - the fixture
    tmp_path,
    dovecot_slash,
    dovecot_dot,
    radicale,
    xandikos,
    make_user,
):
    expect = playwright_api.expect
    source_user, source_password = make_user(dovecot_slash)
    client = connect(dovecot_slash, source_user, source_password)
    try:
        load_corpus(client, build_corpus(700), dovecot_slash.delimiter)
    finally:
        client.logout()
    radicale.add_user(source_user, source_password)
    items = seed_dav(radicale, source_user, source_password)
    target_user, target_password = make_user(dovecot_dot)
    xandikos.add_user(target_user, target_password)
    address = f"{target_user}@new.example"
    csv_path = tmp_path / "dav.csv"
    csv_path.write_text(
        "EmailAddress,UserName,Password,TargetUserName,TargetPassword\n"
        f"{address},{source_user},{source_password},{target_user},{target_password}\n"
    )

    page.goto(server + "/endpoints")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    dav = {
        "old": (dovecot_slash, f"http://127.0.0.1:{radicale.port}/{{user}}/", False),
        "new": (dovecot_dot, f"https://127.0.0.1:{xandikos.port}/", True),  # its own CA
    }
    for name, (dovecot, url, insecure) in dav.items():
        page.fill("#ep-name", name)
        page.fill("#ep-host", "127.0.0.1")
        page.fill("#ep-port", str(dovecot.port))
        page.select_option("#ep-security", "none")
        page.fill("#ep-dav", url)
        if insecure:
            page.check("input[name=dav_insecure]")
        page.click("text=Add endpoint")
        expect(page.locator(f'tr[data-endpoint="{name}"] td.dav')).to_contain_text(url)
    expect(page.locator('tr[data-endpoint="new"] td.dav')).to_contain_text("not checked")
    shot(page, "20-endpoints-dav")

    page.click("text=New batch")
    page.fill("#name", "whole")
    page.select_option("#source", "old")
    page.select_option("#target", "new")
    page.set_input_files("#csv", str(csv_path))
    page.click("text=Create batch")
    expect(page.locator("tr[data-state=created] td.items")).to_have_text(
        "\N{EN DASH}"
    )  # no DAV pass yet
    page.click("button:text-is('Start')")
    row = page.locator("tr[data-state=synced]")
    expect(row).to_have_count(1, timeout=120_000)
    expect(row.locator("td.items")).to_have_text(f"{items} items")
    expect(page.locator(".summary")).to_contain_text(f"{items} calendar and contact items")
    shot(page, "21-batch-dav")

    row.locator("a").click()
    expect(page.get_by_role("heading", name=address)).to_be_visible()
    expect(page.locator(".summary .items")).to_contain_text(
        f"2 collections · {items} items copied; 0 updated, 0 already there, 0 failed"
    )
    expect(page.get_by_text("Nothing failed in the last pass.")).to_be_visible()
    shot(page, "22-mailbox-dav")
