"""Issue 17: the person's own profile page — details, password, console sessions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import inspect as sa_inspect

from cockpit.accounts.service import timezone_choices
from cockpit.auth import profile
from cockpit.console import formatting
from cockpit.console.web import (
    SignedIn,
    Viewer,
    clear_session_cookie,
    discard_changes,
    redirect,
    render,
    templates,
)
from cockpit.kit.errors import CockpitError
from cockpit.kit.web import AppSettings, DbSession

router = APIRouter(prefix="/profile")

AVATAR_HEX = {
    "slate": "#475569",
    "blue": "#2563eb",
    "green": "#16a34a",
    "amber": "#d97706",
    "red": "#dc2626",
    "violet": "#7c3aed",
    "teal": "#0d9488",
    "pink": "#db2777",
}


def avatar_hex(viewer: Viewer) -> str | None:
    """The colour of the person's avatar, from what is loaded: a page that rolled back a failed
    form has expired its objects, and a template must not load from the database (no IO there)."""
    user = sa_inspect(viewer.login_session).dict.get("user")
    colour = sa_inspect(user).dict.get("avatar_colour") if user is not None else None
    return AVATAR_HEX.get(colour or "")


def page_exists(request: Request, path: str) -> bool:
    """Whether the console serves ``path`` (the menu links to pages other work adds, e.g. /billing,
    only once they exist: a menu entry must never lead to "Page not found")."""
    return any(getattr(route, "path", None) == path for route in request.app.routes)


# The sidebar's account manager (every page) paints the person's avatar and checks its links.
templates.env.globals["avatar_hex"] = avatar_hex
templates.env.globals["page_exists"] = page_exists


async def _page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    settings: AppSettings,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    context: dict[str, Any] = {
        "me": await profile.own_user(session, viewer.actor),
        "timezones": timezone_choices(),
        "locales": {code: formatting.LOCALES[code] for code in profile.PROFILE_LOCALES},
        "colours": AVATAR_HEX,
        "sessions": await profile.active_sessions(
            session, viewer.actor, idle_minutes=settings.session_idle_minutes
        ),
    }
    return render(request, "profile/index.html", context | extra, status_code=status_code)


@router.get("")
async def profile_page(
    request: Request, session: DbSession, viewer: SignedIn, settings: AppSettings
) -> Response:
    return await _page(request, session, viewer, settings)


@router.post("")
async def update_details(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    name: Annotated[str, Form(max_length=1000)] = "",
    timezone: Annotated[str, Form(max_length=100)] = "",
    locale: Annotated[str, Form(max_length=100)] = "",
    avatar_colour: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        await profile.update_profile(
            session, viewer.actor, name=name, timezone=timezone, locale=locale, avatar_colour=avatar_colour
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        form = {"name": name[:200], "timezone": timezone, "locale": locale, "avatar_colour": avatar_colour}
        return await _page(
            request, session, viewer, settings, status_code=exc.status, error=exc.message, form=form
        )
    return redirect(request, "/profile", message="Your profile is saved.")


@router.post("/password")
async def change_password(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    current_password: Annotated[str, Form(max_length=1000)] = "",
    new_password: Annotated[str, Form(max_length=1000)] = "",
    confirm_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        if new_password != confirm_password:
            raise profile.mismatch()
        count = await profile.change_password(
            session, viewer.actor, current=current_password, new=new_password
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(
            request, session, viewer, settings, status_code=exc.status, password_error=exc.message
        )
    others = f" {count} other session{'' if count == 1 else 's'} signed out." if count else ""
    return redirect(request, "/profile", message=f"Your password is changed.{others}")


@router.post("/sessions/{session_id}/sign-out")
async def sign_out_session(
    request: Request, session: DbSession, viewer: SignedIn, session_id: uuid.UUID
) -> Response:
    await profile.sign_out_session(session, viewer.actor, session_id)
    if session_id == viewer.login_session.id:
        response = redirect(request, "/login", message="You are signed out.")
        clear_session_cookie(response)
        return response
    return redirect(request, "/profile", message="The session is signed out.")
