"""Where a batch's mailboxes keep their calendars and contacts: an endpoint's DAV setting.

An endpoint may carry a DAV URL template, ``https://dav.host/{user}/``, or ``auto``:
``https://HOST/`` of the endpoint's own host, where discovery (RFC 6764 ``.well-known``,
``current-user-principal``) finds each user's homes. ``{user}`` is the mailbox's login on that
side (the CSV's user), percent-encoded; the login of the URL is that user too, so the template
names none. The CSV stays the same: the mailbox logs in to DAV with its IMAP credentials (its
password, or the endpoint's token for it; with an admin login, the admin's, on the mailbox's URL).

TLS: the endpoint's own CA file and ``insecure`` unless the DAV settings name their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from mailferry.adapters.store.records import EndpointRecord
from mailferry.adapters.tls import TlsOptions
from mailferry.config import is_loopback
from mailferry.service.endpoints import EndpointNames

AUTO = "auto"
PLACEHOLDER = "{user}"


@dataclass(frozen=True)
class DavRoute:
    """The DAV account URLs of one mailbox (``https://USER@HOST/PATH``) and their TLS; a side
    without one (None) is Microsoft 365 through Graph's resources, or has no calendars."""

    source_url: str | None
    target_url: str | None
    source_tls: TlsOptions
    target_tls: TlsOptions


def template_problems(template: str, option: str, *, allow_plaintext: bool = False) -> list[str]:
    """What is wrong with a DAV setting (``option``: its name where it was given)."""
    if template == AUTO:
        return []
    parts = urlsplit(template)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        example = "https://dav.example.com/{user}/"
        return [f"{option} {template!r}: expected auto or a URL template such as {example}"]
    if "@" in parts.netloc:  # never echoed: it might hold a password
        why = f"each mailbox logs in as its own user ({PLACEHOLDER} in the path)"
        return [f"{option}: no USER@ in the template; {why}"]
    problems = []
    if PLACEHOLDER in parts.netloc:
        problems.append(f"{option} {template!r}: {PLACEHOLDER} goes in the path, not the host")
    if "{" in template.replace(PLACEHOLDER, "") or "}" in template.replace(PLACEHOLDER, ""):
        problems.append(f"{option} {template!r}: the only placeholder is {PLACEHOLDER}")
    if parts.query or parts.fragment:
        problems.append(f"{option} {template!r}: no query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a port that is no number
    except ValueError:
        problems.append(f"{option} {template!r}: the port is not a number")
    if parts.scheme == "http" and not (allow_plaintext or is_loopback(parts.hostname)):
        problems.append(f"{option} {template!r}: http:// only to loopback (else https://)")
    return problems


def dav_problems(
    template: str | None,
    ca_file: Path | None,
    insecure: bool | None,
    names: EndpointNames,
    *,
    allow_plaintext: bool = False,
) -> list[str]:
    """An endpoint's DAV settings, each problem named as ``names`` names the setting."""
    problems = []
    if template:
        problems += template_problems(template, names.dav, allow_plaintext=allow_plaintext)
    elif ca_file is not None or insecure is not None:
        problems.append(f"{names.dav_ca_file} and the DAV TLS settings need {names.dav}")
    if ca_file is not None and not ca_file.is_file():
        problems.append(f"{names.dav_ca_file} {ca_file}: no such file")
    return problems


def expand(template: str, user: str, host: str) -> str:
    """The account URL of ``user``: ``{user}`` in the path percent-encoded, the user in the
    URL's login part. ``auto``: ``https://HOST/`` (``host``: the endpoint's IMAP host)."""
    if template == AUTO:
        template = f"https://{_bracketed(host)}/"
    scheme, _, rest = template.partition("://")
    netloc, _, path = rest.partition("/")
    login = quote(user, safe="")
    return f"{scheme}://{login}@{netloc}/{path.replace(PLACEHOLDER, login)}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def dav_tls(record: EndpointRecord) -> TlsOptions:
    """The DAV side's TLS: its own CA file and ``insecure`` where set, else the endpoint's."""
    ca_file = record.dav_ca_file or record.ca_file
    insecure = record.insecure if record.dav_insecure is None else record.dav_insecure
    return TlsOptions(ca_file=Path(ca_file) if ca_file else None, insecure=insecure)


def dav_route(
    source: EndpointRecord, target: EndpointRecord, source_user: str, target_user: str
) -> DavRoute | None:
    """The mailbox's DAV URLs, when either endpoint carries DAV (else None). Whether calendars
    and contacts move is the job's route plan's to say (``graphjobs.job_routes``)."""
    if not source.dav and not target.dav:
        return None
    return DavRoute(
        expand(source.dav, source_user, source.host) if source.dav else None,
        expand(target.dav, target_user, target.host) if target.dav else None,
        dav_tls(source),
        dav_tls(target),
    )


def dav_note(source: EndpointRecord, target: EndpointRecord) -> str | None:
    """What a batch between the two endpoints does with calendars and contacts, when either
    endpoint carries DAV (None: neither does, a mail-only batch)."""
    if source.dav and target.dav:
        return "calendars and contacts follow the mail"
    if source.dav or target.dav:
        has, lacks = (source, target) if source.dav else (target, source)
        return (
            f"calendars and contacts are not moved: endpoint {has.name} has a DAV URL, "
            f"{lacks.name} has none"
        )
    return None
