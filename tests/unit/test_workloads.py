"""Workloads and the Graph permissions each needs (domain/workloads.py), the token's roles
(adapters/graph/roles.py), what ``endpoint test`` prints of them, and the session's pacing window."""

from __future__ import annotations

import base64
import json

import pytest

from mailferry.adapters.graph.roles import token_roles
from mailferry.adapters.graph.session import Window
from mailferry.domain.errors import AuthError, ConfigError
from mailferry.domain.workloads import (
    MailVia,
    Route,
    SideKind,
    Workload,
    allowed,
    missing,
    parse_workloads,
    plan_routes,
)
from mailferry.service.graphprobe import GraphProbe, report_lines, route_reports


def jwt(claims: dict[str, object]) -> str:
    parts = [{"alg": "RS256"}, claims]
    encoded = [base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in parts]
    return ".".join([*encoded, "signature"])


def test_workloads_parse_and_refuse_unknown_names() -> None:
    assert parse_workloads(None) is None
    assert parse_workloads("all") is None
    assert parse_workloads("mail, Calendar") == frozenset({Workload.MAIL, Workload.CALENDAR})
    with pytest.raises(ConfigError, match="unknown journal"):
        parse_workloads("mail,journal")


def test_a_higher_permission_covers_the_lower_one() -> None:
    roles = frozenset({"MailboxFolder.ReadWrite.All", "MailboxItem.ImportExport.All"})
    assert allowed(roles, Route.MAILBOX, "source") == tuple(Workload)
    assert allowed(roles, Route.MAILBOX, "target") == tuple(Workload)
    only_export = frozenset({"MailboxFolder.Read.All", "MailboxItem.Export.All"})
    assert allowed(only_export, Route.MAILBOX, "target") == ()
    assert missing(only_export, Workload.MAIL, Route.MAILBOX, "target") == [
        "MailboxFolder.ReadWrite.All",
        "MailboxItem.ImportExport.All",
    ]


def test_resources_carry_calendars_contacts_and_tasks_only() -> None:
    roles = frozenset({"Calendars.ReadWrite", "Contacts.Read"})
    assert allowed(roles, Route.RESOURCES, "target") == (Workload.CALENDAR,)
    assert allowed(roles, Route.RESOURCES, "source") == (Workload.CALENDAR, Workload.CONTACTS)
    assert missing(roles, Workload.TASKS, Route.RESOURCES, "source") == ["Tasks.Read.All"]
    assert missing(roles, Workload.NOTES, Route.RESOURCES, "target") == []  # no such route


def test_token_roles_are_read_from_the_jwt_payload() -> None:
    token = jwt({"roles": ["Calendars.ReadWrite", "Tasks.ReadWrite.All"], "appid": "x"})
    assert token_roles(token) == {"Calendars.ReadWrite", "Tasks.ReadWrite.All"}
    assert token_roles(jwt({"scp": "Mail.Read"})) == frozenset()
    with pytest.raises(AuthError, match="not a JWT"):
        token_roles("opaque-token")


def test_endpoint_test_names_each_missing_permission_on_one_line() -> None:
    roles = frozenset({"Calendars.ReadWrite", "MailboxFolder.Read.All", "MailboxItem.Export.All"})
    found = GraphProbe("https://graph.example", tuple(sorted(roles)), route_reports(roles))
    lines = report_lines(found)
    assert lines[0].startswith("Microsoft Graph https://graph.example: roles Calendars.ReadWrite")
    assert (
        "  missing for mail as target: MailboxFolder.ReadWrite.All, MailboxItem.ImportExport.All"
        in lines
    )
    assert "  missing for contacts as target: Contacts.ReadWrite" in lines
    assert not any("calendar as target" in line for line in lines if "CalDAV" in line)
    resources = next(line for line in lines if line.startswith("  CalDAV"))
    assert resources.endswith("as source calendar; as target calendar")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_window_waits_in_advance_for_what_would_exceed_it() -> None:
    clock = Clock()
    window = Window(limit=3, seconds=10.0, clock=clock)
    assert [window.take(1, clock.sleep) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.take(1, clock.sleep) == pytest.approx(10.0)  # until the first one ages out
    clock.now = 25.0
    assert window.take(2, clock.sleep) == 0.0
    assert window.take(5, clock.sleep) == pytest.approx(
        10.0
    )  # bigger than the limit: an empty window


MAILBOX_ROLES = frozenset({"MailboxFolder.ReadWrite.All", "MailboxItem.ImportExport.All"})
IMAP = SideKind(imap=True)
DAV = SideKind(imap=True, dav=True)


def m365(*roles: str) -> SideKind:
    return SideKind(imap=True, graph=True, roles=frozenset(roles))


def test_two_tenants_with_the_mailbox_permissions_move_everything_through_export_import() -> None:
    plan = plan_routes(m365(*MAILBOX_ROLES), m365(*MAILBOX_ROLES), None)
    assert plan.mail is MailVia.GRAPH
    assert plan.mailbox == frozenset(Workload)
    assert plan.collections == frozenset()
    assert plan.skipped == ()


def test_mail_via_imap_leaves_the_other_workloads_on_the_mailbox_api() -> None:
    plan = plan_routes(m365(*MAILBOX_ROLES), m365(*MAILBOX_ROLES), None, MailVia.IMAP)
    assert plan.mail is MailVia.IMAP
    assert plan.mailbox == frozenset(Workload) - {Workload.MAIL}


def test_without_the_mailbox_permissions_mail_stays_on_imap_and_calendars_use_resources() -> None:
    source = m365("Calendars.Read", "Contacts.Read")
    target = m365("Calendars.ReadWrite")
    plan = plan_routes(source, target, None)
    assert plan.mail is MailVia.IMAP
    assert plan.mailbox == frozenset()
    assert plan.collections == {Workload.CALENDAR}
    reasons = dict(plan.skipped)
    assert reasons[Workload.CONTACTS] == "the target app lacks Contacts.ReadWrite"
    assert reasons[Workload.TASKS] == "the source app lacks Tasks.Read.All"
    assert "MailboxItem.Export.All" in reasons[Workload.NOTES]


def test_caldav_to_microsoft_365_goes_through_the_collection_sync() -> None:
    target = m365("Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All")
    plan = plan_routes(DAV, target, None)
    assert plan.mail is MailVia.IMAP
    assert plan.collections == {Workload.CALENDAR, Workload.CONTACTS, Workload.TASKS}
    assert dict(plan.skipped)[Workload.NOTES] == "needs Microsoft 365 through Graph on both ends"


def test_a_workload_chosen_by_name_that_cannot_move_is_a_usage_error() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_routes(
            DAV, m365("Calendars.ReadWrite"), frozenset({Workload.CALENDAR, Workload.TASKS})
        )
    assert caught.value.problems == ["--workloads tasks: the target app lacks Tasks.ReadWrite.All"]
    plan = plan_routes(IMAP, IMAP, frozenset({Workload.MAIL}))
    assert plan.mail is MailVia.IMAP
    assert plan.skipped == ()


def test_a_calendar_only_pair_needs_no_imap() -> None:
    source = SideKind(imap=False, dav=True)
    target = SideKind(imap=False, graph=True, roles=frozenset({"Calendars.ReadWrite"}))
    plan = plan_routes(source, target, frozenset({Workload.CALENDAR}))
    assert plan.mail is None
    assert plan.collections == {Workload.CALENDAR}
    with pytest.raises(ConfigError, match="needs an IMAP URL on both ends"):
        plan_routes(source, target, frozenset({Workload.MAIL}))


def test_what_neither_side_has_is_not_reported_as_skipped() -> None:
    dav_only = SideKind(imap=False, dav=True)
    plan = plan_routes(dav_only, dav_only, None)
    assert plan.collections == {Workload.CALENDAR, Workload.CONTACTS, Workload.TASKS}
    assert plan.skipped == ()
    assert dict(plan_routes(IMAP, IMAP, None).skipped) == {}
