from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from cockpit.auth import service as auth_service
from cockpit.console.web import (
    SESSION_COOKIE,
    OptionalViewer,
    SignedIn,
    clear_session_cookie,
    finish,
    redirect,
    render,
    set_session_cookie,
)
from cockpit.kit.web import AppSettings, DbSession, client_ip, user_agent

router = APIRouter()


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never redirect a fresh login to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


@router.get("/login")
async def login_page(request: Request, viewer: OptionalViewer, next: str | None = None) -> Response:
    if viewer is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "auth/login.html", {"next": _safe_next(next), "email": ""})


@router.post("/login")
async def login(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    result = await auth_service.sign_in(
        session,
        settings,
        email=email,
        password=password,
        ip=client_ip(request),
        user_agent=user_agent(request),
    )
    if result.error is not None or result.secret is None:
        assert result.error is not None
        return render(
            request,
            "auth/login.html",
            {"next": _safe_next(next), "email": email[:254], "error": result.error.message},
            status_code=result.error.status,
        )
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # signing in again replaces the session this browser had
        await auth_service.revoke_secret(session, previous)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(response, request, result.secret)
    finish(request, response)
    return response


@router.post("/logout")
async def logout(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    await auth_service.sign_out(session, viewer.actor, viewer.login_session)
    response = redirect(request, "/login", message="You are signed out.")
    clear_session_cookie(response)
    return response
