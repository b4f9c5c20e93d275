"""``create_app(service, settings) -> FastAPI``: the pages, the REST API, the static files, the
operations endpoints, and one error handler per root of the error tree (JSON under ``/api``, an
HTML page elsewhere). Outermost, the access log, then the Host check (``web.hosts``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from mailferry.adapters.metrics import PrometheusTelemetry
from mailferry.domain.errors import (
    AccountError,
    ConfigError,
    Conflict,
    MailferryError,
    NotFound,
    StateError,
)
from mailferry.service.batches import BatchService
from mailferry.web import api, endpoint_pages, login, ops, pages
from mailferry.web.access import AccessLog
from mailferry.web.context import Web
from mailferry.web.credentials import AuthStore
from mailferry.web.format import register_filters
from mailferry.web.hosts import AllowedHosts, HostGuard
from mailferry.web.security import CsrfRejected, Unauthenticated, api_caller
from mailferry.web.settings import WebSettings
from mailferry.web.throttle import LoginThrottle

HERE = Path(str(resources.files("mailferry.web")))
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of the domain are not ours
OPENAPI_URL = "/api/openapi.json"


def create_app(
    service: BatchService,
    settings: WebSettings | None = None,
    *,
    metrics: PrometheusTelemetry | None = None,
    scheduler_owner: str | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """``metrics``: the counters the scheduler feeds (``serve``); ``scheduler_owner``: that
    scheduler, for ``/healthz``; ``clock``: wall-clock seconds (tests move it)."""
    settings = settings or WebSettings()
    templates = Jinja2Templates(directory=HERE / "templates")
    register_filters(templates.env)
    web = Web(
        service=service,
        settings=settings,
        auth=AuthStore.of_service(service, cost=settings.password_cost, clock=clock),
        templates=templates,
        throttle=LoginThrottle(settings.throttle, clock),
        metrics=metrics or PrometheusTelemetry(),
        clock=clock,
        scheduler_owner=scheduler_owner,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        web.close()

    app = FastAPI(
        title="mailferry",
        summary="Migration batches: endpoints, batches, mailboxes, reports.",
        version="1",
        openapi_url=None,  # served below, behind a token or a session
        docs_url=None,  # Swagger UI loads its scripts from a CDN: the schema is enough
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = web
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(login.router)
    app.include_router(pages.router)
    app.include_router(endpoint_pages.router)
    app.include_router(ops.router)
    _schema(app)
    _errors(app)
    app.middleware("http")(_headers)
    app.add_middleware(HostGuard, allowed=AllowedHosts(settings.allowed_hosts))
    app.add_middleware(AccessLog)
    return app


def _schema(app: FastAPI) -> None:
    """The OpenAPI schema, for callers that may use the API anyway: it maps every route."""

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=[Depends(api_caller)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())


async def _headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if not request.url.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    web: Web = request.app.state.web
    if web.settings.secure_cookies:  # served over TLS by us
        response.headers["Strict-Transport-Security"] = HSTS
    return response


def _is_api(request: Request) -> bool:
    """Answered in JSON (401, not a redirect to the login page): the API, and ``/metrics``."""
    return request.url.path.startswith("/api/") or request.url.path in ("/api", "/metrics")


def _error(
    request: Request, status: int, message: str, problems: list[str] | None = None
) -> Response:
    problems = problems or []
    if _is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"error": message, "problems": problems}, status_code=status, headers=headers
        )
    web: Web = request.app.state.web
    return web.templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message, "problems": problems, "session": None},
        status_code=status,
    )


async def _unauthenticated(request: Request, _exc: Exception) -> Response:
    if _is_api(request):
        return _error(request, 401, "authentication required: a bearer token or a session")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _csrf(request: Request, _exc: Exception) -> Response:
    return _error(request, 403, "missing or wrong CSRF token; reload the page and try again")


# The HTTP status of each type of the error tree; the most specific type found first wins.
STATUS: tuple[tuple[type[MailferryError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (ConfigError, 400),
    (AccountError, 502),
    (StateError, 503),
)


def status_of(exc: MailferryError) -> int:
    """The status for ``exc``, by its type alone (never by the words of its message)."""
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


async def _mailferry_error(request: Request, exc: Exception) -> Response:
    """The one handler of the error tree."""
    if not isinstance(exc, MailferryError):  # registered for MailferryError only
        return _error(request, 500, "internal error")
    status = status_of(exc)
    if isinstance(exc, ConfigError):
        message = exc.problems[0] if len(exc.problems) == 1 else "invalid input"
        return _error(request, status, message, exc.problems)
    if isinstance(exc, StateError):
        return _error(request, status, f"state database: {exc}")
    return _error(request, status, str(exc))


async def _invalid(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
        for e in errors
    ]
    return _error(request, 422, "invalid request", problems)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException) or exc.status_code == 404:
        return _error(request, 404, "not found")
    return _error(request, exc.status_code, str(exc.detail))


def _errors(app: FastAPI) -> None:
    """One handler per root of the error tree (and FastAPI's own)."""
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    app.add_exception_handler(CsrfRejected, _csrf)
    app.add_exception_handler(MailferryError, _mailferry_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
