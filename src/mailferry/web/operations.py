"""What the API and the pages both do, once: each function is one user action over the service."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

from mailferry.adapters.imap import Credentials, ImapAccount, TlsOptions
from mailferry.adapters.secrets import Secret
from mailferry.config import parse_date
from mailferry.domain.errors import AccountError, ConfigError
from mailferry.domain.model import Endpoint, Security
from mailferry.service.batches import BatchOptions, BatchService, EndpointSpec
from mailferry.web.context import Web
from mailferry.web.present import mailbox_detail_out
from mailferry.web.schemas import EndpointIn, EndpointTestIn, EndpointTestOut, MailboxDetailOut

ACTIONS: dict[str, Callable[[BatchService, str], int]] = {
    "start": lambda service, name: service.start(name),
    "resume": lambda service, name: service.resume(name),
    "sync": lambda service, name: service.sync(name),
    "complete": lambda service, name: service.complete(name),
    "stop": lambda service, name: service.stop(name),
}
CONFIRM = frozenset({"stop", "complete", "delete"})  # the pages ask before these


class NotFoundError(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def require_batch(service: BatchService, name: str) -> None:
    if service.store.batch(name) is None:
        raise NotFoundError(f"no batch {name!r}")


def run_action(service: BatchService, name: str, action: str) -> int:
    if action not in ACTIONS:
        raise NotFoundError(f"no action {action!r}; one of {', '.join(ACTIONS)}")
    require_batch(service, name)
    return ACTIONS[action](service, name)


def delete_batch(service: BatchService, name: str) -> None:
    require_batch(service, name)
    service.delete(name)


def add_endpoint(service: BatchService, data: EndpointIn) -> None:
    spec = EndpointSpec(
        name=data.name.strip(),
        host=data.host.strip(),
        port=data.port,
        security=Security(data.security),
        max_connections=data.max_connections,
        auth_user=(data.auth_user or "").strip() or None,
        auth_password=Secret(data.auth_password) if data.auth_password else None,
        ca_file=Path(data.ca_file) if data.ca_file else None,
        insecure=data.insecure,
        allow_plaintext=data.allow_plaintext,
    )
    service.add_endpoint(spec)


def try_endpoint(web: Web, name: str, data: EndpointTestIn) -> EndpointTestOut:
    """Connect and log in (as the endpoint's admin, or as the given user). A failed login is a
    result, not an error: ``ok`` is false and ``error`` says why."""
    record = web.service.store.endpoint(name)
    if record is None:
        raise NotFoundError(f"no endpoint {name!r}")
    if data.user:
        if not data.password:
            raise ConfigError("give the password of the user to test with")
        login, password = data.user, Secret(data.password)
    elif record.auth_user and record.auth_secret:
        login, password = record.auth_user, web.service.box.decrypt(record.auth_secret)
    else:
        raise ConfigError(f"endpoint {name} has no admin login: give a user and password")
    where = Endpoint(record.host, record.port, Security(record.security), login)
    tls = TlsOptions(Path(record.ca_file) if record.ca_file else None, record.insecure)
    try:
        account = ImapAccount.connect(
            where,
            Credentials(password.reveal()),
            tls=tls,
            timeout=web.settings.test_timeout,
            readonly=True,
        )
    except AccountError as exc:
        return EndpointTestOut(endpoint=name, login=login, ok=False, error=str(exc))
    try:
        caps, delimiter = sorted(account.capabilities), account.delimiter
    finally:
        account.close()
    return EndpointTestOut(
        endpoint=name, login=login, ok=True, delimiter=delimiter, capabilities=caps
    )


def batch_options(since: str | None, before: str | None, include_deleted: bool) -> BatchOptions:
    problems: list[str] = []
    options = BatchOptions(
        since=parse_date(since, "since", problems),
        before=parse_date(before, "before", problems),
        include_deleted=include_deleted,
    )
    if problems:
        raise ConfigError(problems)
    return options


def folder_defaults(data: bytes, include: str, exclude: str) -> bytes:
    """Fill the batch-wide folder filters (regexes, one per line or ";"-separated) into the
    IncludeFolders/ExcludeFolders cells a row leaves empty. Records keep their line numbers, so
    the CSV's own errors still point at the user's lines."""
    include_cell, exclude_cell = (
        _pattern_cell(include, "include"),
        _pattern_cell(exclude, "exclude"),
    )
    if not include_cell and not exclude_cell:
        return data
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data  # the service reports the encoding, with the line
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return data
    header = [cell.strip().casefold() for cell in rows[0]]
    for column, cell in (("includefolders", include_cell), ("excludefolders", exclude_cell)):
        if not cell:
            continue
        if column not in header:
            header.append(column)
            rows[0].append(column)
            for row in rows[1:]:
                row.append("")
        index = header.index(column)
        for row in rows[1:]:
            if index < len(row) and not row[index].strip():
                row[index] = cell
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _pattern_cell(text: str, label: str) -> str:
    patterns = [p.strip() for p in re.split(r"[;\n]", text or "") if p.strip()]
    problems = []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"{label} folders {pattern!r}: not a valid regular expression ({exc})")
    if problems:
        raise ConfigError(problems)
    return ";".join(patterns)


def create_batch(
    service: BatchService,
    name: str,
    source: str,
    target: str,
    data: bytes,
    options: BatchOptions,
    include: str = "",
    exclude: str = "",
) -> None:
    service.create_batch(
        name.strip(), source, target, folder_defaults(data, include, exclude), options
    )


def mailbox_detail(web: Web, batch: str, address: str) -> MailboxDetailOut:
    service = web.service
    require_batch(service, batch)
    status = service.status(batch)
    view = next((v for v in status.mailboxes if v.record.email == address), None)
    if view is None:
        raise NotFoundError(f"no mailbox {address!r} in batch {batch!r}")
    source = service.store.endpoint(status.batch.source)
    target = service.store.endpoint(status.batch.target)
    folders = (
        web.folders.folders(source, target, view.record) if source is not None and target else []
    )
    failures = [f for f in service.store.failures(batch) if f.email == address]
    return mailbox_detail_out(batch, view, folders, failures)
