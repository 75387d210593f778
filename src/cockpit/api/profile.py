"""The signed-in person's own profile, password, sessions, e-mail and avatar (issue 17).

``GET /me`` lives in ``api/auth.py`` (it returns the ``Profile`` below); this module adds the writes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field, StringConstraints

from cockpit.auth import email_change, profile, profile_media
from cockpit.auth.dependencies import ApiActor
from cockpit.auth.images import MEDIA_TYPES
from cockpit.auth.models import LoginSession
from cockpit.auth.schemas import Me
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import permissions_of
from cockpit.kit.errors import InvalidInput
from cockpit.kit.schemas import InputSchema, OutputSchema
from cockpit.kit.web import AppSettings, DbSession
from cockpit.users.models import User

router = APIRouter(tags=["profile"])


class Profile(Me):
    timezone: str | None = Field(
        default=None, description="The person's time zone (None: the organisation's)"
    )
    locale: str | None = Field(default=None, description="The person's date style (None: the organisation's)")
    avatar_colour: str | None = None
    avatar_updated_at: datetime | None = Field(
        default=None, description="When the avatar picture was set (None: no picture; GET /me/avatar)"
    )
    pending_email: str | None = Field(
        default=None, description="A new sign-in e-mail waiting for its confirmation from that mailbox"
    )

    @classmethod
    def of(cls, user: User, actor: Actor) -> Profile:
        return cls(
            id=user.id,
            account_id=user.account_id,
            email=user.email,
            name=user.name,
            role=user.role,
            permissions=sorted(permissions_of(user.role)),
            token_scopes=sorted(actor.scopes),
            timezone=user.timezone,
            locale=user.locale,
            avatar_colour=user.avatar_colour,
            avatar_updated_at=user.avatar_updated_at,
            pending_email=email_change.pending_email(user),
        )


class ProfileUpdate(InputSchema):
    """Only the fields sent change; ``null`` (or "") for time zone, locale or colour resets it.

    ``email`` (with ``current_password``) does not change the sign-in e-mail at once: a link is sent
    to the new address, and the change happens when it is confirmed (``POST /me/email/confirm``)."""

    name: str | None = Field(default=None, max_length=1000)
    timezone: str | None = Field(default=None, max_length=100)
    locale: str | None = Field(default=None, max_length=20)
    avatar_colour: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    # Not stripped: a password may begin or end with a space.
    current_password: Annotated[str, StringConstraints(strip_whitespace=False)] | None = Field(
        default=None, max_length=1000
    )


class EmailConfirmation(InputSchema):
    token: str = Field(min_length=1, max_length=email_change.MAX_TOKEN)


class PasswordChange(InputSchema):
    model_config = InputSchema.model_config | {"str_strip_whitespace": False}

    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


class PasswordChanged(OutputSchema):
    other_sessions_signed_out: int


class SessionInfo(OutputSchema):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool

    @classmethod
    def of(cls, login_session: LoginSession, actor: Actor) -> SessionInfo:
        return cls(
            id=login_session.id,
            created_at=login_session.created_at,
            last_seen_at=login_session.last_seen_at,
            expires_at=login_session.expires_at,
            ip=login_session.ip,
            user_agent=login_session.user_agent,
            current=login_session.id == actor.session_id,
        )


class SessionList(OutputSchema):
    items: list[SessionInfo]


@router.patch("/me", response_model=Profile)
async def update_me(
    body: ProfileUpdate, session: DbSession, actor: ApiActor, settings: AppSettings
) -> Profile:
    """Change your name, time zone, language of dates and numbers, or avatar colour; or ask to
    change your sign-in e-mail (``email`` with ``current_password``): the answer shows it as
    ``pending_email`` until you follow the link e-mailed to the new address."""
    sent = body.model_fields_set - {"email", "current_password"}
    changes: dict[str, str | None] = {k: getattr(body, k) for k in sent}
    if "name" in changes and changes["name"] is None:
        changes["name"] = ""  # refused by the name check: a person always has a name
    user = await profile.update_profile(session, actor, **changes)  # type: ignore[arg-type]
    if body.email is not None:
        if not body.current_password:
            message = "Send your current password (current_password) to change your e-mail."
            raise InvalidInput(
                "current_password_required",
                message,
                details=[{"field": "current_password", "message": message}],
            )
        user, _ = await email_change.start_email_change(
            session, actor, settings, new_email=body.email, current_password=body.current_password
        )
    return Profile.of(user, actor)


@router.post("/me/email/confirm", response_model=Profile)
async def confirm_my_email(
    body: EmailConfirmation, session: DbSession, actor: ApiActor, settings: AppSettings
) -> Profile:
    """Confirm your new sign-in e-mail with the token of the link sent to it (it works once, for 24
    hours, and only for you); your console sessions are signed out."""
    user, _ = await email_change.confirm_email_change(session, actor, settings, token=body.token)
    return Profile.of(user, actor)


@router.delete("/me/email/pending", response_model=Profile)
async def cancel_my_email_change(session: DbSession, actor: ApiActor) -> Profile:
    """Cancel your pending change of sign-in e-mail (its link stops working)."""
    return Profile.of(await email_change.cancel_email_change(session, actor), actor)


IMAGE_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in MEDIA_TYPES},
    }
}


def image_response(media_type: str, data: bytes, *, cache: str = "private, no-cache") -> Response:
    """A stored picture: its checked type, never sniffed as anything else, never run as a page."""
    return Response(
        content=data,
        media_type=media_type,
        headers={
            "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Content-Disposition": "inline",
        },
    )


@router.put("/me/avatar", response_model=Profile, openapi_extra=IMAGE_BODY)
async def set_my_avatar(request: Request, session: DbSession, actor: ApiActor) -> Profile:
    """Set your avatar picture. The request body is the image's raw bytes (not multipart): PNG,
    JPEG or WebP, at most 1 MB, each side 1 to 4096 pixels. Its type is read from the bytes
    themselves; the ``Content-Type`` header is not trusted. 413 when too large, 422 otherwise."""
    user = await profile_media.set_avatar(session, actor, await request.body())
    return Profile.of(user, actor)


@router.delete("/me/avatar", response_model=Profile)
async def remove_my_avatar(session: DbSession, actor: ApiActor) -> Profile:
    """Remove your avatar picture (your initial shows again)."""
    return Profile.of(await profile_media.remove_avatar(session, actor), actor)


@router.get("/me/avatar", response_class=Response, responses={200: {"content": {"image/png": {}}}})
async def get_my_avatar(session: DbSession, actor: ApiActor) -> Response:
    """Your avatar picture (404 when you have none)."""
    user = await profile.own_user(session, actor)
    avatar = await profile_media.avatar_of(session, actor, user.id)
    return image_response(avatar.media_type, avatar.data)


@router.post("/me/password", response_model=PasswordChanged)
async def change_my_password(body: PasswordChange, session: DbSession, actor: ApiActor) -> PasswordChanged:
    """Change your password (the current one is required); your console sessions are signed out."""
    count = await profile.change_password(
        session, actor, current=body.current_password, new=body.new_password
    )
    return PasswordChanged(other_sessions_signed_out=count)


@router.get("/me/sessions", response_model=SessionList)
async def list_my_sessions(session: DbSession, actor: ApiActor, settings: AppSettings) -> SessionList:
    """Your active console sessions, most recently seen first."""
    rows = await profile.active_sessions(session, actor, idle_minutes=settings.session_idle_minutes)
    return SessionList(items=[SessionInfo.of(s, actor) for s in rows])


@router.delete("/me/sessions/{session_id}", response_model=SessionInfo)
async def sign_out_my_session(session_id: uuid.UUID, session: DbSession, actor: ApiActor) -> SessionInfo:
    """Sign out one of your console sessions (someone else's is not found)."""
    return SessionInfo.of(await profile.sign_out_session(session, actor, session_id), actor)
