"""Logical and physical folder names across personal namespaces (domain/namespace.py)."""

from __future__ import annotations

import pytest

from mailferry.domain.namespace import Namespace

COURIER = Namespace("INBOX.", ".")
PLAIN = Namespace("", "/")


@pytest.mark.parametrize(
    ("logical", "physical"),
    [
        ("INBOX", "INBOX"),
        ("Projects", "INBOX.Projects"),
        ("Projects.2024", "INBOX.Projects.2024"),
        ("Sent", "INBOX.Sent"),
        ("INBOX.Sub", "INBOX.INBOX.Sub"),  # a child of INBOX on a server without a prefix
    ],
)
def test_prefix_added_and_stripped(logical, physical):
    assert COURIER.physical(logical) == physical
    assert COURIER.logical(physical) == logical


def test_inbox_compares_case_insensitively():
    assert COURIER.logical("inbox") == "inbox"
    assert COURIER.logical("Inbox.Projects") == "Projects"


def test_names_outside_the_personal_namespace_have_no_logical_name():
    assert COURIER.logical("#shared.team") is None
    assert COURIER.logical("user.bob") is None
    assert COURIER.logical("INBOX.") is None


def test_no_prefix_is_the_identity():
    for name in ("INBOX", "INBOX/Sub", "Projects/2024", "user.bob"):
        assert PLAIN.physical(name) == name
        assert PLAIN.logical(name) == name
