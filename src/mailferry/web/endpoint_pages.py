"""The endpoints page: the list (each endpoint's login kind and profile, never a secret), the form
that adds one, and the connection test.

The form is multipart: a Microsoft 365 certificate or a Google service account key is uploaded,
read in memory, checked as the CLI checks its files, and stored by the service exactly as
``mailferry endpoint add`` stores it (its secrets encrypted). Problems come back together, the
form keeping what was typed except secrets and files. There is no token command here: a command
the server runs is set only on the command line, so that a stolen admin session never becomes code
execution on the migration host.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from mailferry.adapters.oauth.app_only import M365_AUTHORITY_HOST
from mailferry.adapters.oauth.sources import SourceNames
from mailferry.domain.errors import ConfigError
from mailferry.domain.model import AuthMethod
from mailferry.domain.profiles import PROFILE_NAMES
from mailferry.service.endpoints import EndpointNames
from mailferry.web import operations
from mailferry.web.credentials import Session
from mailferry.web.present import endpoint_out
from mailferry.web.rendering import CsrfField, SessionDep, render, see
from mailferry.web.schemas import EndpointIn, EndpointTestIn, EndpointTestOut
from mailferry.web.security import check_csrf, web_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

# The form's fields, as its problems name them.
FORM_NAMES = EndpointNames(
    host="host",
    port="port",
    max_connections="max connections",
    security="security",
    allow_plaintext='"allow an unencrypted connection"',
    auth_user="admin login",
    auth_password="admin password",  # noqa: S106 - a field's name
    ca_file="CA file",
    auth="login method",
    profile="profile",
    dav="calendars and contacts URL",
    dav_ca_file="DAV CA file",
    files="mail in files",
    oauth_sources="a Microsoft 365 app or a Google service account key",
    tokens=SourceNames(
        command="token command",
        m365="Microsoft 365 app-only",
        m365_tenant="Microsoft 365 tenant id",
        m365_client_id="Microsoft 365 client id",
        m365_client_secret="the client secret",  # noqa: S106 - a field's name
        m365_certificate="the certificate (PEM file)",
        google_service_account="the service account key (JSON file)",
    ),
)
LOGINS = {
    "password": "each mailbox's own password (from the CSV)",
    "admin": "an admin login for every mailbox",
    "m365": "Microsoft 365 app-only (OAuth2)",
    "google": "Google service account (OAuth2)",
}
TOKEN_KINDS = ("Microsoft 365 app-only", "Google service account", "token command")
SECURITIES = ("ssl", "starttls", "none")
METHODS = tuple(m.value for m in AuthMethod)
KEPT = {"name", "host", "port", "security", "max_connections", "login", "auth", "profile",
        "auth_user", "m365_tenant", "m365_client_id", "m365_authority", "m365_graph_url", "allow_plaintext",
        "insecure", "dav", "dav_insecure", "files"}  # fmt: skip
MAX_KEY_BYTES = 64 * 1024  # a certificate or a key file is a few KiB


class EndpointForm(BaseModel):
    """The add-endpoint form as posted: text as typed, the uploads not yet read."""

    csrf_token: str = ""
    name: str = ""
    host: str = ""
    port: str = ""
    security: str = "ssl"
    max_connections: str = "10"
    login: str = "password"  # a key of LOGINS
    auth: str = "auto"
    profile: str = "auto"
    auth_user: str = ""
    auth_password: str = ""
    m365_tenant: str = ""
    m365_client_id: str = ""
    m365_client_secret: str = ""
    m365_certificate: UploadFile | None = None
    m365_authority: str = M365_AUTHORITY_HOST
    m365_graph_url: str = ""
    google_key: UploadFile | None = None
    allow_plaintext: bool = False
    insecure: bool = False
    dav: str = ""  # calendars and contacts: a URL template or "auto" (service/davroutes.py)
    dav_insecure: bool = False
    files: str = ""  # mail in files: a file URL template (service/fileroutes.py)
    oauth_token_command: str | None = None  # not on the form: refused if posted all the same

    def kept(self) -> dict[str, Any]:
        """What the page shows again after a problem: never a secret, never a file."""
        secrets = (self.auth_password, self.m365_client_secret)
        given = any(secrets) or self.m365_certificate is not None or self.google_key is not None
        return {**self.model_dump(include=KEPT), "secrets_given": given}

    def filled(self) -> set[str]:
        """The logins (keys of LOGINS) whose own fields are filled in."""
        found = set()
        if self.auth_user.strip() or self.auth_password:
            found.add("admin")
        m365 = (self.m365_tenant.strip(), self.m365_client_id.strip(), self.m365_client_secret)
        if any(m365) or self.m365_certificate is not None:
            found.add("m365")
        if self.google_key is not None:
            found.add("google")
        return found


# -- routes ----------------------------------------------------------------------------------------
@router.get("/endpoints")
def endpoints_page(request: Request, session: SessionDep) -> Response:
    return _endpoints(request, session)


@router.post("/endpoints")
async def add_endpoint(
    request: Request, session: SessionDep, form: Annotated[EndpointForm, Form()]
) -> Response:
    check_csrf(session, form.csrf_token)
    data, problems = await endpoint_in(form)
    web = web_of(request)
    try:
        await asyncio.to_thread(
            operations.add_endpoint, web.service, data, FORM_NAMES, problems,
            web.settings.files_roots,
        )  # fmt: skip
    except ConfigError as exc:
        return _endpoints(request, session, 400, exc.problems, form.kept())
    return see("/endpoints")


@router.post("/endpoints/{name}/test")
async def endpoint_test(
    request: Request,
    session: SessionDep,
    name: str,
    csrf_token: CsrfField = "",
    user: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(session, csrf_token)
    data = EndpointTestIn(user=user.strip() or None, password=password or None)
    try:
        result = await asyncio.to_thread(operations.try_endpoint, web_of(request), name, data)
    except ConfigError as exc:
        return _endpoints(request, session, 400, exc.problems, test_failed=True)
    return _endpoints(request, session, tested=result)


def _endpoints(
    request: Request,
    session: Session,
    status: int = 200,
    problems: list[str] | None = None,
    form: dict[str, Any] | None = None,
    tested: EndpointTestOut | None = None,
    *,
    test_failed: bool = False,
) -> Response:
    endpoints = [endpoint_out(r) for r in web_of(request).service.endpoints()]
    return render(
        request, "endpoints.html", session, status, endpoints=endpoints, problems=problems or [],
        problems_title="Not tested:" if test_failed else "Not saved:", form=form or {},
        tested=tested, logins=LOGINS, methods=METHODS, profiles=PROFILE_NAMES,
        token_kinds=TOKEN_KINDS, authority=M365_AUTHORITY_HOST,
    )  # fmt: skip


# -- the form, read ---------------------------------------------------------------------------------
async def endpoint_in(form: EndpointForm) -> tuple[EndpointIn, list[str]]:
    """The API's input from the form, with the problems only a form has (text that is not a
    number, an upload that is no text, fields of another login than the one chosen); the rest
    is checked by ``operations.add_endpoint``, all problems reported together."""
    problems: list[str] = []
    login = _choice(form.login, tuple(LOGINS), "login", "password", problems)
    problems += _login_problems(login, form)
    names = FORM_NAMES.tokens
    certificate = await _upload(form.m365_certificate, names.m365_certificate, problems)
    key = await _upload(form.google_key, names.google_service_account, problems)
    fields = {
        "name": form.name,
        "host": form.host,
        "port": _number(form.port, "port", None, problems),
        "security": _choice(form.security, SECURITIES, "security", "ssl", problems),
        "max_connections": _number(form.max_connections, "max connections", 10, problems),
        "auth": _choice(form.auth, METHODS, "login method", "auto", problems),
        "profile": _choice(form.profile, PROFILE_NAMES, "profile", "auto", problems),
        "insecure": form.insecure,
        "allow_plaintext": form.allow_plaintext,
        "oauth_token_command": form.oauth_token_command,
        "dav": form.dav.strip() or None,
        "dav_insecure": True if form.dav_insecure else None,  # unchecked: as "insecure"
        "files": form.files.strip() or None,
    }
    # Every value is one the model takes (bad ones were replaced and listed as problems).
    data = EndpointIn.model_validate(fields | _login_fields(login, form, certificate, key))
    return data, problems


def _login_fields(
    login: str, form: EndpointForm, certificate: str | None, key: str | None
) -> dict[str, Any]:
    """The chosen login's fields only (another login's are a problem already)."""
    if login == "admin":
        return {"auth_user": form.auth_user, "auth_password": form.auth_password or None}
    if login == "m365":
        return {
            "m365_tenant": form.m365_tenant,
            "m365_client_id": form.m365_client_id,
            "m365_client_secret": form.m365_client_secret or None,
            "m365_certificate_pem": certificate,
            "m365_authority": form.m365_authority,
            "m365_graph_url": form.m365_graph_url.strip().rstrip("/") or None,
        }
    if login == "google":
        return {"google_service_account_json": key}
    return {}


def _login_problems(login: str, form: EndpointForm) -> list[str]:
    problems = [
        f"the fields of {LOGINS[other]} are filled in, but the login chosen is {LOGINS[login]}: "
        "choose that login, or empty them"
        for other in sorted(form.filled() - {login})
    ]
    if login == "admin" and not form.auth_user.strip():
        problems.append("admin login is missing (the user that logs in for every mailbox)")
    if login == "m365" and not (form.m365_tenant.strip() or form.m365_client_id.strip()):
        problems.append(
            "Microsoft 365 app-only: give the tenant id, the client id, and a client secret or "
            "a certificate"
        )
    if login == "google" and form.google_key is None:
        problems.append(f"{FORM_NAMES.tokens.google_service_account}: choose the file to upload")
    return problems


async def _upload(file: UploadFile | None, label: str, problems: list[str]) -> str | None:
    """An uploaded key file's text, read in memory (never written to disk by us)."""
    if file is None:
        return None
    data = await file.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        problems.append(f"{label}: larger than {MAX_KEY_BYTES // 1024} KiB, not a key file")
        return None
    try:
        return data.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        problems.append(f"{label}: not a text file (PEM or JSON)")
        return None


def _choice(
    value: str, choices: tuple[str, ...], label: str, default: str, problems: list[str]
) -> str:
    if value in choices:
        return value
    problems.append(f"{label} {value!r}: one of {', '.join(choices)}")
    return default


def _number(text: str, label: str, default: int | None, problems: list[str]) -> int | None:
    if not text.strip():
        return default
    if not text.strip().isdigit():
        problems.append(f"{label} {text!r}: expected a number")
        return default
    return int(text)
