"""What every page handler shares: the session it needs, the CSRF field its forms carry, rendering
a template with both, and the redirect that ends an action (POST/redirect/GET)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from mailferry.web.credentials import Session
from mailferry.web.security import CSRF_FIELD, page_session, polling_session, web_of

SessionDep = Annotated[Session, Depends(page_session)]
PollingSessionDep = Annotated[Session, Depends(polling_session)]
CsrfField = Annotated[str, Form(alias=CSRF_FIELD)]


def render(
    request: Request, template: str, session: Session | None, status: int = 200, **context: Any
) -> Response:
    web = web_of(request)
    context.update(session=session, csrf=session.csrf if session else "", settings=web.settings)
    return web.templates.TemplateResponse(request, template, context, status_code=status)


def see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
