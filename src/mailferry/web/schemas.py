"""The REST API's shapes (pydantic), apart from the service's records: what the API promises
stays put when a table gains a column, and no secret field exists here to leak by accident."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    error: str
    problems: list[str] = Field(default_factory=list)


class EndpointIn(BaseModel):
    name: str
    host: str
    port: int | None = None
    security: Literal["ssl", "starttls", "none"] = "ssl"
    max_connections: int = 10
    auth_user: str | None = None
    auth_password: str | None = Field(default=None, description="Write-only: never returned.")
    ca_file: str | None = None
    insecure: bool = False
    allow_plaintext: bool = False


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


class EndpointTestIn(BaseModel):
    user: str | None = Field(default=None, description="Log in as this user (else the admin).")
    password: str | None = Field(default=None, description="Write-only: never returned.")


class EndpointTestOut(BaseModel):
    endpoint: str
    login: str
    ok: bool
    delimiter: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    error: str | None = None


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
    progress: float | None = Field(description="0..1 of the pass in flight, 1 when synced")
    rate_bytes_per_second: float | None
    eta_seconds: float | None
    started: str | None
    finished: str | None
    last_synced: str | None


class FolderOut(BaseModel):
    source: str
    target: str | None
    messages_copied: int
    messages_failed: int
    pass_finished: bool


class FailureOut(BaseModel):
    folder: str
    uid: int | None
    reason: str


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
    every_seconds: float | None
    stop_requested: bool
    created: str | None
    messages_copied: int
    bytes_copied: int
    progress: float | None
    rate_bytes_per_second: float


class BatchDetailOut(BatchOut):
    mailboxes: list[MailboxOut]


class ActionOut(BaseModel):
    batch: str
    action: str
    mailboxes: int = Field(description="How many mailboxes the action queued or stopped.")


class DeletedOut(BaseModel):
    batch: str
    deleted: bool = True
