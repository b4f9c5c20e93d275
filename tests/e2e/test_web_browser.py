"""The dashboard in real headless Chromium (Debian's, driven by Playwright) against
`mailferry serve` as a process and two real Dovecot servers: log in, add endpoints, test one,
upload a CSV of 4 users (one with a wrong password), start, watch the page reach Synced without
reloading, open the failed mailbox, download the report, complete the batch.

Screenshots of the main pages go to test-artifacts/screenshots/ for a reviewer.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailferry.sandbox.corpus import build_corpus, connect, load_corpus

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ADMIN_PASSWORD = "a long admin password"

playwright_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mailferry serve exited: {proc.communicate()[1]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2),  # noqa: S310 - our own loopback server
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILFERRY_")}
    clean["HOME"] = str(tmp_path)
    clean["MAILFERRY_STATE"] = str(tmp_path / "state.sqlite3")
    return clean


@pytest.fixture
def server(env, tmp_path) -> Iterator[str]:
    password_file = tmp_path / "admin-password"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    init = subprocess.run(
        [sys.executable, "-m", "mailferry.cli", "admin", "init", "--password-file", str(password_file)],
        env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailferry.cli", "serve", "--poll", "0.2", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/login", proc)
        yield url
    finally:
        proc.terminate()
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        assert "Traceback" not in err, err


@pytest.fixture
def page(tmp_path):
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
            viewport={"width": 1366, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def users(dovecot_slash, dovecot_dot, make_user):
    rows = []
    for i in range(4):
        source_user, source_password = make_user(dovecot_slash)
        client = connect(dovecot_slash, source_user, source_password)
        try:
            load_corpus(client, build_corpus(600 + i), dovecot_slash.delimiter)
        finally:
            client.logout()
        target_user, target_password = make_user(dovecot_dot)
        if i == 2:
            source_password = "wrong-password"  # the failure under test
        rows.append((f"{target_user}@new.example", source_user, source_password,
                     target_user, target_password))  # fmt: skip
    return rows


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_dashboard_end_to_end(server, page, tmp_path, dovecot_slash, dovecot_dot, make_user):
    expect = playwright_api.expect
    rows = users(dovecot_slash, dovecot_dot, make_user)
    csv_path = tmp_path / "wave1.csv"
    csv_path.write_text(
        "EmailAddress,UserName,Password,TargetUserName,TargetPassword\n"
        + "".join(",".join(row) + "\n" for row in rows)
    )

    # log in (a page asks for it first)
    page.goto(server + "/")
    expect(page).to_have_url(server + "/login?next=%2F")
    shot(page, "01-login")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Migration batches")).to_be_visible()
    expect(page.get_by_text("No batches yet.")).to_be_visible()
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "mailferry_session")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"

    # endpoints, and a connection test
    page.click("text=Endpoints")
    for name, dovecot in (("old", dovecot_slash), ("new", dovecot_dot)):
        page.fill("#ep-name", name)
        page.fill("#ep-host", "127.0.0.1")
        page.fill("#ep-port", str(dovecot.port))
        page.select_option("#ep-security", "none")
        page.fill("#ep-max", "3")
        page.click("text=Add endpoint")
        expect(page.locator("table.grid td", has_text=name).first).to_be_visible()
    page.fill("#user-2", rows[0][1])
    page.fill("#pw-2", rows[0][2])
    page.locator("form.inline").nth(1).locator("button").click()
    expect(page.locator("#test-result")).to_contain_text("login as")
    expect(page.locator("#test-result")).to_contain_text("ok")
    assert rows[0][2] not in page.content()  # the password typed is not sent back
    shot(page, "02-endpoints")

    # new batch from the CSV
    page.click("text=New batch")
    page.fill("#name", "wave1")
    page.select_option("#source", "old")
    page.select_option("#target", "new")
    page.set_input_files("#csv", str(csv_path))
    shot(page, "03-new-batch")
    page.click("text=Create batch")
    expect(page.get_by_role("heading", name="Batch wave1")).to_be_visible()
    expect(page.locator("tr[data-state=created]")).to_have_count(4)

    # start, and watch it reach Synced without reloading
    page.click("button:text-is('Start')")
    expect(page.get_by_role("status").first).to_contain_text("4 mailboxes queued to start")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("tr[data-state=synced]")).to_have_count(3, timeout=240_000)
    expect(page.locator("tr[data-state=failed]")).to_have_count(1)
    expect(page.locator(".summary .state").first).to_have_text("synced")
    assert page.evaluate("window.__notReloaded") is True  # htmx swapped the rows in place
    expect(page.locator("svg.chart")).to_be_visible()
    shot(page, "04-batch-synced")

    # the failed mailbox says why
    failed = page.locator("tr[data-state=failed]")
    expect(failed.locator("td.reason")).to_contain_text("source")
    failed.locator("a").click()
    expect(page.get_by_role("heading", name=rows[2][0])).to_be_visible()
    expect(page.locator(".error")).to_contain_text("Last error")
    shot(page, "05-mailbox-failed")
    page.go_back()
    page.locator("tr[data-state=synced] a").first.click()
    expect(page.locator("table.grid tbody tr").first).to_be_visible()
    expect(page.get_by_text("finished").first).to_be_visible()
    shot(page, "06-mailbox-synced")
    page.go_back()

    # the report
    with page.expect_download() as info:
        page.click("a:text-is('CSV')")
    report = Path(info.value.path()).read_text(encoding="utf-8")
    records = list(csv.DictReader(io.StringIO(report)))
    assert sorted(r["state"] for r in records) == ["failed", "synced", "synced", "synced"]
    assert all(int(r["messages_copied"]) > 0 for r in records if r["state"] == "synced")
    assert all(row[2] not in report for row in rows)  # no password in the report

    # complete, after a confirmation
    page.click("button:text-is('Complete')")
    expect(page.get_by_role("heading", name="Complete batch wave1?")).to_be_visible()
    shot(page, "07-confirm-complete")
    page.click("text=Yes, complete batch wave1")
    expect(page.locator("tr[data-state=completed]")).to_have_count(3, timeout=240_000)
    expect(page.locator("tr[data-state=failed]")).to_have_count(1, timeout=60_000)
    shot(page, "08-batch-completed")

    page.click("nav >> text=Batches")
    expect(page.locator("table.grid td a", has_text="wave1")).to_be_visible()
    shot(page, "09-batches")
