"""Provider profiles: a table of data and the pure rules built from it."""

from __future__ import annotations

import re

import pytest

from mailferry.bootstrap import Side, SyncRequest, credentials, profiled_mapping
from mailferry.domain.errors import ConfigError
from mailferry.domain.folders import MappingOptions, map_folders
from mailferry.domain.model import Endpoint, FolderInfo, Security
from mailferry.domain.profiles import (
    GENERIC,
    GMAIL,
    MICROSOFT365,
    PROFILES,
    choose_profile,
    effective_size_limit,
    is_system_folder,
    profile_for_host,
    reserved_renames,
)


@pytest.mark.parametrize(
    ("host", "profile"),
    [
        ("outlook.office365.com", MICROSOFT365),
        ("OUTLOOK.OFFICE365.COM.", MICROSOFT365),
        ("imap-mail.outlook.com", MICROSOFT365),
        ("imap.gmail.com", GMAIL),
        ("mail.example.org", GENERIC),
        ("gmail.com.evil.example", GENERIC),
    ],
)
def test_profile_by_host(host, profile):
    assert profile_for_host(host) is profile


def test_profile_by_name():
    assert choose_profile("gmail", "mail.example.org") is GMAIL
    assert choose_profile("auto", "outlook.office365.com") is MICROSOFT365
    assert choose_profile(None, "x") is GENERIC
    with pytest.raises(ConfigError, match="expected one of"):
        choose_profile("yahoo", "x")


def test_profiles_are_data():
    assert set(PROFILES) == {"generic", "microsoft365", "gmail"}
    assert not MICROSOFT365.assume_multiappend
    assert not MICROSOFT365.assume_condstore


@pytest.mark.parametrize(
    ("name", "excluded"),
    [
        ("Sync Issues", True),
        ("Sync Issues/Conflicts", True),
        ("Sync Issues.Local Failures", True),
        ("sync issues", True),
        ("Calendar", True),
        ("Calendar/Birthdays", True),
        ("Outbox", True),
        ("INBOX", False),
        ("INBOX/Calendar", False),  # only the top-level system folder
        ("Calendars of 2020", False),
        ("Sync Issues 2", False),
    ],
)
def test_exchange_system_folders(name, excluded):
    assert is_system_folder(MICROSOFT365, name) is excluded


def test_gmail_views_excluded_but_all_mail_kept():
    assert is_system_folder(GMAIL, "[Gmail]/Important")
    assert is_system_folder(GMAIL, "[Gmail].Starred")
    assert not is_system_folder(GMAIL, "[Gmail]/All Mail")  # the only home of archived mail
    assert not is_system_folder(GENERIC, "Calendar")


def test_reserved_names_leave_user_maps_alone():
    assert reserved_renames(MICROSOFT365, []) == (("Files", "Files (migrated)"),)
    assert reserved_renames(MICROSOFT365, [("files", "Dateien")]) == ()
    assert reserved_renames(GENERIC, []) == ()


def test_size_limit_is_the_smaller():
    assert effective_size_limit(MICROSOFT365, None) == 36 * 1024 * 1024
    assert effective_size_limit(MICROSOFT365, 10_000) == 10_000
    assert effective_size_limit(GENERIC, None) is None
    assert effective_size_limit(GENERIC, 5) == 5


def _request(source_host: str, target_host: str, **kw) -> tuple[SyncRequest, tuple]:
    request = SyncRequest(
        source=Side(url=f"imaps://a@{source_host}", name="source"),
        target=Side(url=f"imaps://b@{target_host}", name="target"),
        mapping=MappingOptions(exclude=(re.compile("^Junk$"),)),
        **kw,
    )
    pair = (
        Endpoint(source_host, 993, Security.SSL, "a", None),
        Endpoint(target_host, 993, Security.SSL, "b", None),
    )
    return request, pair


def test_profiled_mapping_from_m365_to_m365():
    request, pair = _request("outlook.office365.com", "outlook.office365.com")
    mapping = profiled_mapping(request, pair)
    assert mapping.maps == (("Files", "Files (migrated)"),)
    assert mapping.exclude[0].pattern == "^Junk$"  # the user's own patterns stay first
    assert any(p.search("Sync Issues/Conflicts") for p in mapping.exclude)


def test_profiled_mapping_generic_is_unchanged():
    request, pair = _request("mail.example.org", "imap.example.net")
    assert profiled_mapping(request, pair) == request.mapping


def test_profiled_mapping_folder_plan():
    """The rules work through the real folder planner."""
    request, pair = _request("mail.example.org", "outlook.office365.com")
    mapping = profiled_mapping(request, pair)
    source = [
        FolderInfo("INBOX", "/", frozenset()),
        FolderInfo("Files", "/", frozenset()),
        FolderInfo("Files/2020", "/", frozenset()),
    ]
    plan = map_folders(source, [FolderInfo("INBOX", "/", frozenset())], "/", mapping)
    targets = {m.source.name: m.target for m in plan.mappings}
    assert targets["Files"] == "Files (migrated)"
    assert targets["Files/2020"] == "Files (migrated)/2020"


def _side(**kw) -> Side:
    return Side(url="imaps://bob@outlook.office365.com", name="target", **kw)


def _endpoint(authuser: str | None = None) -> Endpoint:
    return Endpoint("outlook.office365.com", 993, Security.SSL, "bob", authuser)


def test_credentials_problems(tmp_path):
    with pytest.raises(ConfigError, match="needs a token source"):
        credentials(_side(auth="xoauth2"), _endpoint(), None)
    with pytest.raises(ConfigError, match="expected one of"):
        credentials(_side(auth="kerberos"), _endpoint(), None)
    with pytest.raises(ConfigError, match="one token source"):
        credentials(_side(oauth_token_command="x", m365_tenant="t"), _endpoint(), None)
    with pytest.raises(ConfigError, match="contradicts"):
        credentials(_side(auth="password", oauth_token_command="x"), _endpoint(), None)
    with pytest.raises(ConfigError, match="authuser"):
        credentials(_side(oauth_token_command="x"), _endpoint("admin"), None)
    with pytest.raises(ConfigError) as caught:
        credentials(_side(m365_tenant="t"), _endpoint(), None)
    assert len(caught.value.problems) == 2  # client id and the secret/certificate, together


def test_credentials_build_a_token_provider(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    side = _side(m365_tenant="t", m365_client_id="c", m365_client_secret_file=secret)
    creds = credentials(side, _endpoint(), None)
    assert creds.tokens is not None
    assert "s3cr3t" not in repr(creds)
