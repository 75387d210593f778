"""Console plumbing: templates, the session cookie, CSRF, flash messages and page guards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.auth import service as auth_service
from cockpit.auth.models import LoginSession
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import Permission
from cockpit.config import Settings
from cockpit.console import formatting
from cockpit.console.markdown import render_markdown
from cockpit.console.names import named, target_name
from cockpit.console.nav import navigation
from cockpit.credits import requests as credit_requests
from cockpit.kit.errors import CockpitError, InvalidInput, NotAuthenticated, NotFound, NotPermitted
from cockpit.kit.web import DbSession, client_ip, user_agent
from cockpit.tenancy.models import Account
from cockpit.tenancy.service import account_by_id

SESSION_COOKIE = "cockpit_session"
CSRF_COOKIE = "cockpit_csrf"
FLASH_COOKIE = "cockpit_flash"

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def _show(value: Any) -> str:
    """A stored value as people read it: lists joined, nothing as a dash, objects as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(_show(v) for v in value) or "—"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


templates.env.filters["show"] = _show
templates.env.filters["markdown"] = render_markdown
formatting.install(templates.env)
templates.env.filters["named"] = named
templates.env.globals["target_name"] = target_name


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sign(request: Request, purpose: str, value: str) -> str:
    key = request.app.state.secret_key.encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


# ---- CSRF: a random cookie, and forms carry an HMAC of it and of the session (signed double
# submit, bound to the session: a token taken from one session is worthless in another) ----


def _csrf_cookie(request: Request) -> str:
    value = getattr(request.state, "csrf_cookie", None) or request.cookies.get(CSRF_COOKIE)
    if not value or len(value) > 100:
        value = secrets.token_urlsafe(24)
        request.state.csrf_cookie_new = True
    request.state.csrf_cookie = value
    return value


def _session_binding(request: Request) -> str:
    """The session a token belongs to (a digest of the session cookie; empty before sign-in)."""
    secret = request.cookies.get(SESSION_COOKIE) or ""
    return hashlib.sha256(secret[:100].encode()).hexdigest() if secret else ""


def _expected_csrf(request: Request, cookie: str) -> str:
    return _sign(request, "csrf", f"{cookie}|{_session_binding(request)}")


def csrf_token(request: Request) -> str:
    return _expected_csrf(request, _csrf_cookie(request))


def _origin_allowed(request: Request, origin: str) -> bool:
    """A browser's Origin must be this deployment: the host it was reached by or COCKPIT_BASE_URL.

    "null" is not refused here: browsers send it for a page with ``Referrer-Policy: no-referrer``
    (the invitation page keeps its secret URL out of Referer headers that way). Such a request is
    still refused when the browser says it is cross-site, and it must carry the page's token."""
    if origin == "null":
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    host = request.headers.get("host", "")
    base = urlsplit(_settings(request).base_url).netloc
    return parts.netloc.lower() in {host.lower(), base.lower()}


async def verify_csrf(request: Request) -> None:
    """Router dependency: every unsafe console request must come from a Cockpit page (its Origin,
    when the browser sends one, is this deployment) and carry that page's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("origin")
    cross_site = request.headers.get("sec-fetch-site") == "cross-site"
    if cross_site or (origin is not None and not _origin_allowed(request, origin)):
        raise NotPermitted(
            "cross_origin_request",
            "This request came from another site and was refused. Open Cockpit and try again there.",
        )
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not cookie or not sent or not hmac.compare_digest(sent, _expected_csrf(request, cookie)):
        raise NotPermitted(
            "csrf_failed",
            "This form has expired or did not come from Cockpit. Reload the page and try again.",
        )


# ---- flash messages: a signed cookie read once by the next page ----


def flash(response: Response, request: Request, kind: str, message: str) -> None:
    payload = base64.urlsafe_b64encode(json.dumps([kind, message[:500]]).encode()).decode()
    response.set_cookie(
        FLASH_COOKIE,
        f"{payload}.{_sign(request, 'flash', payload)}",
        max_age=60,
        httponly=True,
        samesite="lax",
        secure=_settings(request).secure_cookies,
    )


def _take_flash(request: Request) -> list[dict[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw:
        return []
    payload, signature = raw.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(request, "flash", payload)):
        return []
    try:
        kind, message = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return []
    request.state.flash_consumed = True
    return [{"kind": str(kind), "message": str(message)}]


def redirect(request: Request, url: str, *, message: str | None = None, kind: str = "success") -> Response:
    """After a form POST: redirect (or HX-Redirect for htmx) with an optional flash banner."""
    if request.headers.get("hx-request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if message:
        flash(response, request, kind, message)
    return response


# ---- who is signed in ----


@dataclass
class Viewer:
    actor: Actor
    login_session: LoginSession
    account: Account
    pending_requests: int = 0  # credit requests waiting for this administrator (navigation badge)

    def can(self, permission: Permission | str) -> bool:
        return self.actor.can(Permission(permission))

    @property
    def display_name(self) -> str:
        """How the console names the person to themselves: their name, else their e-mail."""
        user = self.login_session.user
        return user.name.strip() or user.email

    @property
    def timezone(self) -> str:
        """The person's time zone for dates shown to them (their profile's; else the organisation's)."""
        return self.login_session.user.timezone or self.account.timezone

    @property
    def locale(self) -> str:
        """How dates are written for the person (their profile's choice; else the organisation's)."""
        return self.login_session.user.locale or self.account.locale


async def _viewer(request: Request, session: DbSession) -> Viewer | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret or len(secret) > 100:
        return None
    login_session = await auth_service.resolve_session(session, _settings(request), secret)
    if login_session is None:
        return None
    account = await account_by_id(session, login_session.account_id)
    if account is None:
        return None
    actor = Actor.for_user(
        login_session.user, session_id=login_session.id, ip=client_ip(request), user_agent=user_agent(request)
    )
    viewer = Viewer(
        actor=actor,
        login_session=login_session,
        account=account,
        pending_requests=await credit_requests.pending_count(session, actor),
    )
    request.state.viewer = viewer
    return viewer


OptionalViewer = Annotated[Viewer | None, Depends(_viewer)]


async def _signed_in(viewer: OptionalViewer) -> Viewer:
    if viewer is None:
        raise NotAuthenticated("login_required", "Please sign in.")
    return viewer


SignedIn = Annotated[Viewer, Depends(_signed_in)]


def page_requires(permission: Permission) -> Callable[[Viewer], Awaitable[Viewer]]:
    async def dependency(viewer: SignedIn) -> Viewer:
        if not viewer.actor.can(permission):
            raise NotPermitted("not_permitted", "This page is for account administrators.")
        return viewer

    return dependency


AdminViewer = Annotated[Viewer, Depends(page_requires(Permission.account_write))]
AuditViewer = Annotated[Viewer, Depends(page_requires(Permission.audit_read))]


def path_id(value: str, code: str, message: str) -> uuid.UUID:
    """An id from the URL: one that is not even a UUID is a page that does not exist (404)."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(code, message) from exc


async def discard_changes(session: AsyncSession, viewer: Viewer) -> None:
    """A failed form: undo everything the request wrote, then reload what the page shows."""
    session.info.pop("after_commit", None)
    await session.rollback()
    await session.refresh(viewer.account)
    await session.refresh(viewer.login_session)
    await session.refresh(viewer.login_session.user)


def set_session_cookie(response: Response, request: Request, secret: str) -> None:
    settings = _settings(request)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


# ---- rendering ----


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> Response:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    flashes = _take_flash(request)
    ctx: dict[str, Any] = {
        "viewer": viewer,
        # Dates are shown in the person's time zone (as the organisation unless they chose one).
        "tz": ZoneInfo(viewer.timezone) if viewer else UTC,
        "nav": navigation(viewer.actor, request.url.path, {"pending_requests": viewer.pending_requests})
        if viewer
        else [],
        "csrf_token": csrf_token(request),
        "flashes": flashes,
        **(context or {}),
    }
    # ... and written the way their locale writes them (macros imported without context too).
    with formatting.date_style(viewer.locale if viewer else formatting.DEFAULT_STYLE):
        response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    finish(request, response)
    return response


def finish(request: Request, response: Response) -> None:
    """Set the CSRF cookie when it was just created, and drop a flash that was shown."""
    if getattr(request.state, "csrf_cookie_new", False):
        response.set_cookie(
            CSRF_COOKIE,
            request.state.csrf_cookie,
            httponly=True,
            samesite="strict",
            secure=_settings(request).secure_cookies,
            path="/",
        )
    if getattr(request.state, "flash_consumed", False):
        response.delete_cookie(FLASH_COOKIE)


async def render_error(request: Request, exc: CockpitError) -> Response:
    if isinstance(exc, NotAuthenticated) and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    if isinstance(exc, NotAuthenticated):
        return RedirectResponse("/login", status_code=303)
    titles = {403: "Not permitted", 404: "Page not found", 429: "Too many requests"}
    if getattr(request.state, "viewer", None) is None and request.cookies.get(SESSION_COOKIE):
        # No page ran (an unknown address): find out who is signed in, so that the error is shown
        # inside their console (navigation and all). Read only: a 404 does not extend a session.
        try:
            async with request.app.state.sessionmaker() as session:
                await _viewer(request, session)  # closed without a commit: nothing is written
        except Exception:  # the database may be why this is an error page: show it without the shell
            request.state.viewer = None
    template = "errors/error_app.html" if getattr(request.state, "viewer", None) else "errors/error.html"
    return render(
        request,
        template,
        {"status": exc.status, "title": titles.get(exc.status, "Something went wrong"), "error": exc},
        status_code=exc.status,
    )


def local_datetime(value: str, viewer: Viewer, field: str) -> datetime | None:
    """A console datetime-local input, in the person's time zone (None when empty)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            "invalid_input",
            f"'{value}' is not a valid date and time.",
            details=[{"field": field, "message": "invalid date"}],
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(viewer.timezone))
