"""What the API and the pages both do, once: each function is one user action over the service."""

from __future__ import annotations

import csv
import io
import os
import re
import ssl
import stat
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.adapters.oauth.sources import SourceNames, TokenSource
from mailferry.adapters.secrets import Secret
from mailferry.adapters.store.records import EndpointRecord
from mailferry.config import parse_date
from mailferry.domain.errors import ConfigError, NotFound
from mailferry.domain.labels import LabelMode
from mailferry.domain.model import Security
from mailferry.domain.workloads import MailVia, Workload, parse_workloads
from mailferry.service.batches import BatchOptions, BatchService, EndpointSpec, endpoint_problems
from mailferry.service.batchpages import MailboxQuery
from mailferry.service.endpoints import EndpointNames
from mailferry.service.fileroutes import under_roots
from mailferry.service.graphprobe import probe_record
from mailferry.service.probe import probe
from mailferry.web.context import Web
from mailferry.web.present import endpoint_test_out, mailbox_detail_out
from mailferry.web.schemas import EndpointIn, EndpointTestIn, EndpointTestOut, MailboxDetailOut

ACTIONS: dict[str, Callable[[BatchService, str], int]] = {
    "start": lambda service, name: service.start(name),
    "resume": lambda service, name: service.resume(name),
    "sync": lambda service, name: service.sync(name),
    "complete": lambda service, name: service.complete(name),
    "stop": lambda service, name: service.stop(name),
}
CONFIRM = frozenset({"stop", "complete", "delete"})  # the pages ask before these
COMMAND_REFUSED = (
    "a token command is set only on the command line (mailferry endpoint add "
    "--oauth-token-command): the web never configures a command for the server to run"
)
# The API's keys, as its problems name them.
API_NAMES = EndpointNames(
    host="host",
    port="port",
    max_connections="max_connections",
    security="security",
    allow_plaintext="allow_plaintext",
    auth_user="auth_user",
    auth_password="auth_password",  # noqa: S106 - a key's name
    ca_file="ca_file",
    auth="auth",
    profile="profile",
    dav="dav",
    dav_ca_file="dav_ca_file",
    files="files",
    oauth_sources="m365_tenant with m365_client_id, or google_service_account_json",
    tokens=SourceNames(
        command="oauth_token_command",
        m365="m365_tenant/m365_client_id",
        m365_tenant="m365_tenant",
        m365_client_id="m365_client_id",
        m365_client_secret="m365_client_secret",  # noqa: S106 - a key's name
        m365_certificate="m365_certificate_pem",
        google_service_account="google_service_account_json",
    ),
)


MAX_CA_BYTES = 1024 * 1024  # a CA bundle is ~200 KiB; more is not one


def mailbox_query(
    state: str | None, errors: str | None, search: str, page: int, per_page: int
) -> MailboxQuery:
    """A page of a batch from the URL's query (``?state=&errors=yes|no&q=&page=&per_page=``);
    empty values mean "any"."""
    flags = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
    wanted = (errors or "").strip().lower()
    if wanted and wanted not in flags:
        raise ConfigError(f"errors {errors!r}: expected yes or no")
    query = MailboxQuery(state or None, flags.get(wanted), search.strip(), page, per_page)
    return query.check()


def require_batch(service: BatchService, name: str) -> None:
    if service.store.batch(name) is None:
        raise NotFound(f"no batch {name!r}")


def run_action(service: BatchService, name: str, action: str) -> int:
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}; one of {', '.join(ACTIONS)}")
    require_batch(service, name)
    return ACTIONS[action](service, name)


def delete_batch(service: BatchService, name: str) -> None:
    require_batch(service, name)
    service.delete(name)


def add_endpoint(
    service: BatchService,
    data: EndpointIn,
    names: EndpointNames = API_NAMES,
    problems: Sequence[str] = (),
    files_roots: Sequence[Path] = (),
) -> EndpointRecord:
    """Check and store the endpoint as ``mailferry endpoint add`` does. ``problems``: those the
    caller found already (a form's), reported with the service's; ``names``: what they call the
    settings. A token command is refused: the server would run whatever it is given. Files only
    under ``files_roots`` (``serve --files-root``): else a web session could read any file the
    service can, or write an mbox where a program takes its lines as commands."""
    spec = endpoint_spec(data)
    found = list(problems)
    if data.oauth_token_command is not None:
        found.append(f"{names.tokens.command}: {COMMAND_REFUSED}")
    if spec.files and not under_roots(spec.files, files_roots):
        found.append(f"{names.files}: {files_refused(files_roots)}")
    if spec.ca_file is not None and not is_ca_file(spec.ca_file):
        found.append(
            f"{names.ca_file} {str(spec.ca_file)!r}: not a CA certificate file (PEM) that "
            "mailferry can read on the server"
        )
        spec = replace(spec, ca_file=None)  # else the service says "no such file": a probe
    if spec.dav_ca_file is not None and not is_ca_file(spec.dav_ca_file):
        found.append(
            f"{names.dav_ca_file} {str(spec.dav_ca_file)!r}: not a CA certificate file (PEM) "
            "that mailferry can read on the server"
        )
        spec = replace(spec, dav_ca_file=None)
    found += endpoint_problems(spec, names)
    if found:
        raise ConfigError(found)
    return service.add_endpoint(spec, names=names)


def is_ca_file(path: Path) -> bool:
    """Whether ``path`` is a readable PEM file of certificates. Missing, unreadable, a directory,
    a device, too large, not PEM: one answer for all, so that a form or API call (a stolen
    session, or a curious admin) cannot map which files exist on the server. The CLI keeps its
    precise messages: whoever runs it can look at the files anyway."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # a FIFO must not hang us
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return False
            data = file.read(MAX_CA_BYTES + 1)
        if len(data) > MAX_CA_BYTES:
            return False
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no system CAs: only what is read
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (OSError, ValueError, ssl.SSLError):
        return False
    return context.cert_store_stats()["x509"] > 0


def endpoint_spec(data: EndpointIn) -> EndpointSpec:
    tokens = TokenSource(
        m365_tenant=_text(data.m365_tenant),
        m365_client_id=_text(data.m365_client_id),
        m365_client_secret=data.m365_client_secret or None,
        m365_certificate_pem=data.m365_certificate_pem or None,
        m365_authority=data.m365_authority.strip() or M365_AUTHORITY_HOST,
        m365_graph_url=_text(data.m365_graph_url),
        google_service_account_json=data.google_service_account_json or None,
    )
    return EndpointSpec(
        name=data.name.strip(),
        host=data.host.strip(),
        port=data.port,
        security=Security(data.security),
        max_connections=data.max_connections,
        auth_user=_text(data.auth_user),
        auth_password=Secret(data.auth_password) if data.auth_password else None,
        ca_file=Path(data.ca_file) if data.ca_file else None,
        insecure=data.insecure,
        allow_plaintext=data.allow_plaintext,
        auth=data.auth,
        tokens=tokens,
        profile=data.profile,
        dav=_text(data.dav),
        dav_ca_file=Path(data.dav_ca_file) if data.dav_ca_file else None,
        dav_insecure=data.dav_insecure,
        files=_text(data.files),
    )


def files_refused(roots: Sequence[Path]) -> str:
    if not roots:
        return (
            "mail in files is set only on the command line (mailferry endpoint add --files), "
            "or under a directory the service is started with (mailferry serve --files-root)"
        )
    return "not under " + ", ".join(str(r) for r in roots) + " (mailferry serve --files-root)"


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def try_endpoint(web: Web, name: str, data: EndpointTestIn) -> EndpointTestOut:
    """Connect and log in (as the endpoint's admin, as the given user, or with a token for the
    given mailbox). A failed login is a result, not an error: ``ok`` is false and ``error`` says
    why (see ``service.probe``)."""
    record = web.service.store.endpoint(name)
    if record is None:
        raise NotFound(f"no endpoint {name!r}")
    if record.files:
        raise ConfigError(f"{name} is mail in files: test it with `mailferry endpoint test`")

    def password_of(_user: str) -> Secret:
        if not data.password:
            raise ConfigError("give the password of the user to test with")
        return Secret(data.password)

    timeout = web.settings.test_timeout
    found = probe(web.service, record, data.user, password_of, timeout=timeout, user_name="a user")
    graph = probe_record(web.service, record, data.user, timeout)
    return endpoint_test_out(found, graph)


def batch_options(
    since: str | None,
    before: str | None,
    include_deleted: bool,
    labels: str = LabelMode.ONCE.value,
    neutralise_read_receipts: bool = False,
    workloads: str = "",
    mail_via: str = "",
) -> BatchOptions:
    problems: list[str] = []
    chosen = _workloads(workloads, problems)
    via = None
    if mail_via.strip():
        try:
            via = MailVia(mail_via.strip())
        except ValueError:
            choices = ", ".join(m.value for m in MailVia)
            problems.append(f"mail_via {mail_via!r}: expected one of {choices}")
    try:
        mode = LabelMode(labels)
    except ValueError:
        problems.append(
            f"labels {labels!r}: expected one of {', '.join(m.value for m in LabelMode)}"
        )
        mode = LabelMode.ONCE
    options = BatchOptions(
        since=parse_date(since, "since", problems),
        before=parse_date(before, "before", problems),
        include_deleted=include_deleted,
        neutralise_read_receipts=neutralise_read_receipts,
        labels=mode,
        workloads=chosen,
        mail_via=via,
    )
    if problems:
        raise ConfigError(problems)
    return options


def _workloads(text: str, problems: list[str]) -> frozenset[Workload] | None:
    """The form's or the API's ``workloads`` (comma-separated; empty: all that may move)."""
    try:
        return parse_workloads(text)
    except ConfigError as exc:
        problems.extend(p.replace("--workloads", "workloads") for p in exc.problems)
        return None


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
    view = service.mailbox(batch, address)
    folders = service.folder_progress(batch, address)
    failures = [f for f in service.store.failures(batch) if f.email == address]
    return mailbox_detail_out(batch, view, folders, failures)
