"""The REST API's shapes (pydantic), apart from the service's records: what the API promises
stays put when a table gains a column, and no secret field exists here to leak by accident."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST


class ErrorOut(BaseModel):
    error: str
    problems: list[str] = Field(default_factory=list)


WRITE_ONLY = "Write-only: stored encrypted, never returned."
DAV = (
    "Calendars and contacts: the mailboxes' CalDAV/CardDAV URL with {user} for each mailbox's "
    "user (https://dav.example.com/{user}/), or 'auto' (https://HOST/, discovered). A batch moves "
    "them when both its endpoints have one; the mailboxes log in as for IMAP."
)

FILES = (
    "Mail in files instead of a server: a file URL with {user} for each mailbox's user of the "
    "CSV (maildir:///var/vmail/old.example/{user}, pst:///shares/{user}/archive.pst). Only under "
    "a directory the service was started with (mailferry serve --files-root)."
)


class EndpointIn(BaseModel):
    """An endpoint's settings, as ``mailferry endpoint add`` takes them. A token source is one of:
    Microsoft 365 app-only (``m365_tenant`` + ``m365_client_id`` + a client secret or a
    certificate) or a Google service account key. A token command is refused here: the server
    would run it (see ``oauth_token_command``)."""

    name: str
    host: str = ""
    port: int | None = None
    security: Literal["ssl", "starttls", "none"] = "ssl"
    max_connections: int = 10
    auth_user: str | None = Field(default=None, description="An admin login for every mailbox.")
    auth_password: str | None = Field(default=None, description=WRITE_ONLY)
    ca_file: str | None = None
    insecure: bool = False
    allow_plaintext: bool = False
    auth: Literal["auto", "password", "xoauth2", "oauthbearer"] = Field(
        default="auto",
        description="How mailboxes log in: auto takes a token login (XOAUTH2, else OAUTHBEARER) "
        "when a token source is given, else the password.",
    )
    profile: Literal["auto", "generic", "microsoft365", "gmail"] = Field(
        default="auto", description="Provider profile; auto: by host."
    )
    m365_tenant: str | None = Field(default=None, description="Microsoft 365 app-only: tenant id.")
    m365_client_id: str | None = Field(
        default=None, description="Microsoft 365 app-only: application (client) id."
    )
    m365_client_secret: str | None = Field(default=None, description=WRITE_ONLY)
    m365_certificate_pem: str | None = Field(
        default=None,
        description="PEM text holding the app's certificate and its private key. " + WRITE_ONLY,
    )
    m365_authority: str = Field(
        default=M365_AUTHORITY_HOST, description="Microsoft identity platform host."
    )
    m365_graph_url: str | None = Field(
        default=None,
        description="Microsoft Graph's base URL (default https://graph.microsoft.com; national "
        "clouds differ). Given, the endpoint's mailboxes are Microsoft 365 through Graph for "
        "calendars, contacts, tasks and notes.",
    )
    google_service_account_json: str | None = Field(
        default=None,
        description="The text of a Google service account key file (JSON) with domain-wide "
        "delegation. " + WRITE_ONLY,
    )
    oauth_token_command: str | None = Field(
        default=None,
        description="Refused (400): a token command is set only on the command line "
        "(`mailferry endpoint add --oauth-token-command`), never through the web.",
    )
    dav: str | None = Field(default=None, description=DAV)
    dav_ca_file: str | None = Field(default=None, description="The DAV server's CA (PEM file).")
    dav_insecure: bool | None = Field(
        default=None, description="Do not verify the DAV server's certificate; null: as insecure."
    )
    files: str | None = Field(default=None, description=FILES)


class EndpointOut(BaseModel):
    name: str
    host: str
    port: int
    security: str
    max_connections: int
    auth_user: str | None
    has_admin_password: bool
    ca_file: str | None
    insecure: bool
    login_kind: str = Field(
        description="password, admin login, Microsoft 365 app-only, Google service account or "
        "token command"
    )
    auth: str = Field(description="The login method: auto, password, xoauth2 or oauthbearer.")
    profile: str = Field(description="The profile set: auto (by host) or a profile's name.")
    profile_applied: str = Field(description="The profile a session gets (auto resolved).")
    dav: str | None = Field(default=None, description=DAV)
    dav_ca_file: str | None = None
    dav_insecure: bool | None = Field(default=None, description="null: as insecure")
    files: str | None = Field(default=None, description=FILES)


class EndpointTestIn(BaseModel):
    user: str | None = Field(
        default=None,
        description="Log in as this user (else the admin); for a token endpoint, the mailbox "
        "the token acts for.",
    )
    password: str | None = Field(
        default=None, description="Write-only: never returned; not used with a token."
    )


class GraphRouteOut(BaseModel):
    route: str
    source: list[str] = Field(description="Workloads the app may read through this route.")
    target: list[str] = Field(description="Workloads the app may write through this route.")
    missing: list[str] = Field(description="'WORKLOAD as SIDE: PERMISSION, ...' for each gap.")


class GraphTestOut(BaseModel):
    """Microsoft 365 through Graph: the app's permissions (token roles) and what they allow."""

    graph_url: str
    roles: list[str] = Field(default_factory=list)
    routes: list[GraphRouteOut] = Field(default_factory=list)
    mailbox: str | None = None
    mailbox_ok: bool | None = None
    error: str | None = None
    notes: list[str] = Field(default_factory=list)


class EndpointTestOut(BaseModel):
    endpoint: str
    login: str
    ok: bool
    address: str | None = None
    login_methods_offered: list[str] = Field(
        default_factory=list, description="What the server offers before login."
    )
    login_method: str | None = Field(default=None, description="The login method used.")
    token_login: bool = False
    profile: str | None = None
    profile_by_host: bool | None = Field(
        default=None, description="True: chosen by host name; false: set on the endpoint."
    )
    delimiter: str | None = None
    capabilities: list[str] = Field(
        default_factory=list, description="After login; before it when there was none."
    )
    tls: str | None = Field(default=None, description="verified, not verified (insecure), or none.")
    logged_in: bool = Field(
        default=False, description="False: no login to test with (see note); the rest was checked."
    )
    note: str | None = Field(default=None, description="Why there was no login.")
    error: str | None = None
    graph: GraphTestOut | None = Field(
        default=None, description="Microsoft 365 endpoints: the Graph set-up (else null)."
    )


class RunningOut(BaseModel):
    """The pass in flight: counted so far (the plan grows folder by folder)."""

    planned_messages: int
    planned_bytes: int
    done_messages: int
    done_bytes: int


class MailboxOut(BaseModel):
    address: str
    line: int
    source_user: str
    target_user: str
    state: str
    pending: str | None
    running: bool
    reason: str | None
    folders: int
    messages_copied: int
    messages_existing: int
    messages_skipped: int
    messages_failed: int
    bytes_copied: int
    current: RunningOut | None
    worker: str | None = Field(
        default=None, description="host:pid of the process running it now (a worker, serve)"
    )
    progress: float | None = Field(description="0..1 of the pass in flight, 1 when synced")
    rate_bytes_per_second: float | None
    eta_seconds: float | None
    started: str | None
    finished: str | None
    last_synced: str | None
    collections: int | None = Field(
        default=None,
        description="Calendars and address books of the last pass; null: no calendar and "
        "contact pass ran (the item counters are null too)",
    )
    items_copied: int | None = Field(default=None, description="All passes")
    items_updated: int | None = Field(default=None, description="The last pass, like the rest")
    items_skipped: int | None = Field(default=None, description="Already on the target")
    items_failed: int | None = None
    item_conflicts: int | None = Field(
        default=None, description="Changed on the target since copied: left alone"
    )
    workloads: dict[str, WorkloadOut] | None = Field(
        default=None,
        description="Per workload, the last pass: how it went and its counters; null: no pass "
        "recorded them yet",
    )


class WorkloadOut(BaseModel):
    """One workload of a mailbox's last pass (mail, calendar, contacts, tasks, notes)."""

    route: str = Field(
        description="imap, collections (CalDAV/CardDAV or Graph resources), graph (mailbox "
        "import/export), or none (not moved: see reason)"
    )
    reason: str | None = Field(default=None, description="Why it did not move, or did not run")
    seen: int | None = Field(default=None, description="Source items looked at")
    copied: int | None = None
    copied_total: int | None = Field(default=None, description="All passes")
    updated: int | None = None
    already_there: int | None = Field(default=None, description="Recognised on the target")
    unchanged: int | None = None
    failed: int | None = Field(default=None, description="Listed in the mailbox's failures")


class FolderOut(BaseModel):
    source: str
    target: str | None
    messages_copied: int
    messages_failed: int
    pass_finished: bool


class FailureOut(BaseModel):
    kind: Literal["message", "item"] = Field(
        default="message", description="item: a calendar or contact item; folder: its collection"
    )
    folder: str
    uid: int | None = Field(description="A message's UID (null for items: see item_uid)")
    reason: str
    href: str | None = Field(default=None, description="An item's source href")
    item_uid: str | None = Field(default=None, description="An item's UID")


class MailboxDetailOut(MailboxOut):
    batch: str
    folder_progress: list[FolderOut]
    failures: list[FailureOut]


class BatchOut(BaseModel):
    name: str
    source: str
    target: str
    state: str
    counts: dict[str, int]
    mailbox_count: int
    since: str | None
    before: str | None
    include_deleted: bool
    labels: str
    neutralise_read_receipts: bool
    every_seconds: float | None
    stop_requested: bool
    created: str | None
    messages_copied: int
    bytes_copied: int
    items_copied: int = Field(default=0, description="Calendar and contact items, all passes")
    workloads: list[str] | None = Field(
        default=None, description="The workloads chosen; null: all that may move"
    )
    mail_via: str | None = Field(
        default=None,
        description="graph or imap between Microsoft 365 endpoints; null: graph where the apps may",
    )
    progress: float | None
    rate_bytes_per_second: float


class WorkerOut(BaseModel):
    worker: str = Field(description="host:pid, as mailboxes name the worker running them")
    host: str
    pid: int
    version: str
    started: str
    last_heartbeat: str
    jobs_running: int
    concurrency: int
    lost: bool = Field(description="Silent for longer than its stall timeout")


class BatchDetailOut(BatchOut):
    mailboxes: list[MailboxOut] = Field(description="One page of the mailboxes, in CSV order.")
    matched: int | None = Field(None, description="Mailboxes the filters match, on all pages.")
    page: int | None = Field(None, description="This page, from 1.")
    per_page: int | None = Field(None, description="Mailboxes per page.")
    workers: list[WorkerOut] = Field(
        default_factory=list,
        description="Every worker on a shared database (`mailferry worker`); none on SQLite",
    )


class ActionOut(BaseModel):
    batch: str
    action: str
    mailboxes: int = Field(description="How many mailboxes the action queued or stopped.")


class DeletedOut(BaseModel):
    batch: str
    deleted: bool = True
