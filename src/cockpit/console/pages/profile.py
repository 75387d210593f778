"""Issue 17: the person's own profile page — details, sign-in e-mail, avatar, password, sessions.

The e-mail change is confirmed from a link (``/profile/email/confirm?token=...``) opened while signed
in as that person: opened signed out, it shows the sign-in form, which comes back to it (the token
travels in the form's body, never in another URL that access logs would keep unredacted)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import inspect as sa_inspect

from cockpit.accounts.service import timezone_choices
from cockpit.auth import email_change, profile, profile_media
from cockpit.auth.images import ACCEPT, MAX_IMAGE_BYTES
from cockpit.console import formatting
from cockpit.console.web import (
    OptionalViewer,
    SignedIn,
    Viewer,
    clear_session_cookie,
    discard_changes,
    path_id,
    redirect,
    render,
    templates,
)
from cockpit.kit.errors import CockpitError, InvalidInput
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


def avatar_url(viewer: Viewer) -> str | None:
    """The person's avatar picture (versioned by when it was set), from what is loaded (as above)."""
    user = sa_inspect(viewer.login_session).dict.get("user")
    if user is None:
        return None
    updated = sa_inspect(user).dict.get("avatar_updated_at")
    return f"/profile/avatar/{user.id}?v={int(updated.timestamp())}" if updated is not None else None


def logo_url(viewer: Viewer) -> str | None:
    """The organisation's logo (versioned by when it was set), from what is loaded (as above)."""
    updated = sa_inspect(viewer.account).dict.get("logo_updated_at")
    return f"/account/logo?v={int(updated.timestamp())}" if updated is not None else None


def image_response(media_type: str, data: bytes) -> Response:
    """A stored picture, for the people of its account only: its checked type, never sniffed as
    anything else, never run as a page; the browser may keep it (its URL changes with it)."""
    return Response(
        content=data,
        media_type=media_type,
        headers={
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": "inline",
        },
    )


async def read_upload(file: UploadFile | None) -> bytes:
    """The bytes of an uploaded picture (one byte past the limit is enough to refuse it)."""
    if file is None or not file.filename:
        raise InvalidInput("file_required", "Choose an image to upload.")
    return await file.read(MAX_IMAGE_BYTES + 1)


# The sidebar's account manager (every page) paints the person's avatar.
templates.env.globals["avatar_hex"] = avatar_hex
templates.env.globals["avatar_url"] = avatar_url
templates.env.globals["logo_url"] = logo_url


async def _page(
    request: Request,
    session: DbSession,
    viewer: Viewer,
    settings: AppSettings,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    me = await profile.own_user(session, viewer.actor)
    context: dict[str, Any] = {
        "me": me,
        "pending_email": email_change.pending_email(me),
        "change_hours": email_change.EMAIL_CHANGE_HOURS,
        "accept": ACCEPT,
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


# ---- the sign-in e-mail ----


@router.post("/email")
async def start_email_change(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    new_email: Annotated[str, Form(max_length=320)] = "",
    current_password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        user, _ = await email_change.start_email_change(
            session, viewer.actor, settings, new_email=new_email, current_password=current_password
        )
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(
            request, session, viewer, settings, status_code=exc.status, email_error=exc.message,
            email_form={"new_email": new_email[:254]},
        )  # fmt: skip
    return redirect(
        request,
        "/profile#email",
        message=f"A confirmation link is on its way to {user.pending_email}: open it to finish the change.",
    )


@router.post("/email/cancel")
async def cancel_email_change(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    await email_change.cancel_email_change(session, viewer.actor)
    return redirect(request, "/profile#email", message="The change of e-mail is cancelled.")


@router.get("/email/confirm")
async def email_confirmation_page(
    request: Request, session: DbSession, viewer: OptionalViewer, token: str = ""
) -> Response:
    """Shows what the link confirms, with a button (a link opened by a mail scanner changes nothing)."""
    token = token[: email_change.MAX_TOKEN + 1]
    if viewer is None:
        target = f"{email_change.CONFIRM_PATH}?token={token}" if token.isalnum() else "/profile"
        note = "Sign in to confirm your new e-mail address (with your current e-mail)."
        login: dict[str, Any] = {"next": target, "email": "", "flashes": [{"kind": "info", "message": note}]}
        response = render(request, "auth/login.html", login)
    else:
        me = await profile.own_user(session, viewer.actor)
        try:
            new_email = email_change.check_token(me, token)
        except CockpitError as exc:
            response = render(
                request, "profile/confirm_email.html", {"error": exc.message}, status_code=exc.status
            )
        else:
            context: dict[str, Any] = {"token": token, "new_email": new_email, "me": me}
            response = render(request, "profile/confirm_email.html", context)
    # The page's address holds the one-time token: it must not leave in a Referer header.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/email/confirm")
async def confirm_email_change(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    token: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        user, count = await email_change.confirm_email_change(session, viewer.actor, settings, token=token)
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return render(request, "profile/confirm_email.html", {"error": exc.message}, status_code=exc.status)
    others = f" {count} other session{'' if count == 1 else 's'} signed out." if count else ""
    message = f"You now sign in with {user.email}.{others}"
    return redirect(request, "/profile#email", message=message)


# ---- the avatar picture ----


@router.post("/avatar")
async def upload_avatar(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    settings: AppSettings,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        await profile_media.set_avatar(session, viewer.actor, await read_upload(file))
    except CockpitError as exc:
        await discard_changes(session, viewer)
        return await _page(
            request, session, viewer, settings, status_code=exc.status, avatar_error=exc.message
        )
    return redirect(request, "/profile#avatar", message="Your picture is saved.")


@router.post("/avatar/remove")
async def remove_avatar(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    await profile_media.remove_avatar(session, viewer.actor)
    return redirect(request, "/profile#avatar", message="Your picture is removed.")


@router.get("/avatar/{user_id}")
async def avatar_image(session: DbSession, viewer: SignedIn, user_id: str) -> Response:
    """Anyone's avatar in the viewer's organisation; another organisation's is not found."""
    uid = path_id(user_id, "avatar_not_found", "No such avatar.")
    avatar = await profile_media.avatar_of(session, viewer.actor, uid)
    return image_response(avatar.media_type, avatar.data)
