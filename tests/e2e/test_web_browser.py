"""The dashboard in real headless Chromium (Debian's, driven by Playwright) against
`mailferry serve` as a process and two real Dovecot servers: log in, add endpoints, test one,
upload a CSV of 4 users (one with a wrong password), start, watch the page reach Synced without
reloading, open the failed mailbox, download the report, complete the batch. Then OAuth2:
Microsoft 365 app-only endpoints added through the form (a secret; a certificate uploaded) and
tested with tokens from a FAKE identity provider that a Dovecot oauth2 passdb checks.

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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from mailferry.sandbox.corpus import build_corpus, connect, load_corpus
from mailferry.sandbox.dovecot import DovecotServer
from tests.integration.fake_idp import FakeIdentityProvider, rsa_key_pem, self_signed_certificate

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
TENANT_APP = "tenant-app"  # what the FAKE identity provider's app tokens introspect to
APP, APP_SECRET = "web-app", "web-app-secret-k3v9"
CERT_APP = "web-cert-app"

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


@contextlib.contextmanager
def serving(
    env: dict[str, str], tmp_path: Path, never_logged: Callable[[], Iterable[str]] = tuple
) -> Iterator[str]:
    """`mailferry admin init` then `mailferry serve` as a process; yields its URL. When it has
    stopped, its output holds no traceback and none of ``never_logged()`` (secrets, tokens)."""
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
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert "Traceback" not in err, err
    for secret in never_logged():
        assert secret not in out + err, "a secret or a token reached the server's output"


@pytest.fixture
def server(env, tmp_path) -> Iterator[str]:
    with serving(env, tmp_path) as url:
        yield url


@pytest.fixture
def idp(tmp_path) -> Iterator[FakeIdentityProvider]:
    """A FAKE identity provider on 127.0.0.1 (tests/integration/fake_idp.py), standing in for
    Entra ID: msal in the served app gets its app-only tokens from it, Dovecot checks them."""
    with FakeIdentityProvider(tmp_path / "idp", lifetime=120) as provider:
        provider.add_client(APP, APP_SECRET)
        for client in (APP, CERT_APP):
            provider.mailbox_permissions[client] = TENANT_APP
        yield provider


@pytest.fixture
def oauth_dovecot(tmp_path, idp) -> Iterator[DovecotServer]:
    with DovecotServer(
        tmp_path / "dovecot",
        delimiter="/",
        oauth2_introspection_url=idp.introspection_url,
        oauth2_username_format=TENANT_APP,
    ) as dovecot:
        dovecot.add_user("ann", "pw-ann-unused")
        yield dovecot


@pytest.fixture
def oauth_server(env, tmp_path, idp) -> Iterator[str]:
    env = {**env, "REQUESTS_CA_BUNDLE": str(idp.ca_file)}  # msal's https to the fake IdP
    with serving(env, tmp_path, lambda: [APP_SECRET, *idp.tokens]) as url:
        yield url


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
    expect(page.locator("#test-result")).to_contain_text("Login methods offered")
    expect(page.locator("#test-result")).to_contain_text("generic (by host)")
    expect(page.locator('tr[data-endpoint="old"] td.login')).to_have_text("password")
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


def add_m365_endpoint(
    page, name: str, port: int, idp, client: str, screenshot: str | None = None, **credential: str
) -> None:
    """Fill the form for a Microsoft 365 app-only endpoint (with the FAKE IdP as its authority)."""
    page.select_option("#ep-login", "m365")  # after each save the form starts afresh
    page.fill("#ep-name", name)
    page.fill("#ep-host", "127.0.0.1")
    page.fill("#ep-port", str(port))
    page.select_option("#ep-security", "none")
    page.select_option("#ep-profile", "microsoft365")
    page.fill("#ep-m365-tenant", idp.tenant)
    page.fill("#ep-m365-client", client)
    if "secret" in credential:
        page.fill("#ep-m365-secret", credential["secret"])
    if "certificate" in credential:
        page.set_input_files("#ep-m365-cert", credential["certificate"])
    page.fill("#ep-m365-authority", idp.authority.rsplit("/", 1)[0])
    if screenshot:
        shot(page, screenshot)
    page.click("button:text-is('Add endpoint')")


def run_endpoint_test(page, name: str, mailbox: str):
    row = page.locator(f'tr[data-endpoint="{name}"]')
    row.locator("input[name=user]").fill(mailbox)
    row.locator("button").click()
    return page.locator("#test-result")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_oauth_endpoints_added_and_tested_in_the_browser(
    oauth_server, page, idp, oauth_dovecot, tmp_path
):
    """Microsoft 365 app-only endpoints (a secret; a certificate uploaded) added through the form,
    listed with their login kind and profile, and tested with a token for a mailbox: the token comes
    from the FAKE identity provider, Dovecot's oauth2 passdb checks it."""
    expect = playwright_api.expect
    key = rsa_key_pem(tmp_path / "app-key.pem")
    certificate = tmp_path / "app.pem"
    certificate.write_bytes((tmp_path / "app-key.pem").read_bytes() + self_signed_certificate(key))
    idp.add_client_certificate(CERT_APP, key.public_key())

    page.goto(oauth_server + "/endpoints")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Endpoints")).to_be_visible()
    expect(page.locator("#ep-m365-tenant")).to_be_hidden()  # only the chosen login's fields
    page.select_option("#ep-login", "m365")
    expect(page.locator("#ep-m365-tenant")).to_be_visible()
    expect(page.locator("#ep-admin")).to_be_hidden()

    add_m365_endpoint(
        page, "m365", oauth_dovecot.port, idp, APP, "10-endpoint-form-m365", secret=APP_SECRET
    )
    row = page.locator('tr[data-endpoint="m365"]')
    expect(row.locator("td.login")).to_have_text("Microsoft 365 app-only")
    expect(row.locator("td.profile")).to_have_text("microsoft365")
    add_m365_endpoint(
        page, "m365-cert", oauth_dovecot.port, idp, CERT_APP, certificate=str(certificate)
    )
    expect(page.locator('tr[data-endpoint="m365-cert"] td.login')).to_have_text(
        "Microsoft 365 app-only"
    )
    add_m365_endpoint(page, "m365-wrong", oauth_dovecot.port, idp, APP, secret="not-the-secret")

    result = run_endpoint_test(page, "m365", "ann")
    expect(result).to_contain_text("login as ann ok")
    expect(result).to_contain_text("XOAUTH2 OAUTHBEARER")
    expect(result).to_contain_text("xoauth2 (with a token)")
    expect(result).to_contain_text("microsoft365 (chosen)")
    html = page.content()
    assert idp.tokens, "the fake IdP issued no token"
    assert not any(token in html for token in idp.tokens)
    assert APP_SECRET not in html
    shot(page, "11-endpoints-oauth-tested")

    result = run_endpoint_test(page, "m365-cert", "ann")
    expect(result).to_contain_text("login as ann ok")
    assert {issued.client for issued in idp.tokens.values()} == {APP, CERT_APP}
    result = run_endpoint_test(page, "m365-wrong", "ann")  # the IdP refuses: a result, not a 500
    expect(result).to_contain_text("login as ann failed")
    expect(result).to_contain_text("invalid_client")

    # problems come back together; the form keeps the login chosen and what is no secret
    page.select_option("#ep-login", "google")
    page.fill("#ep-name", "gmail")
    page.fill("#ep-host", "imap.gmail.com")
    page.fill("#ep-max", "lots")
    page.set_input_files(
        "#ep-google-key",
        files=[{"name": "key.json", "mimeType": "application/json", "buffer": b"{}"}],
    )
    page.click("button:text-is('Add endpoint')")
    expect(page.locator("[role=alert]")).to_contain_text("not a Google service account key file")
    expect(page.locator("[role=alert]")).to_contain_text("max connections 'lots'")
    expect(page.locator("#ep-name")).to_have_value("gmail")
    expect(page.locator("#ep-google-key")).to_be_visible()
    shot(page, "12-endpoint-problems")
