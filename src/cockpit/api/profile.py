"""The signed-in person's own profile, password and sessions (issue 17).

``GET /me`` lives in ``api/auth.py`` (it returns the ``Profile`` below); this module adds the writes.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from cockpit.auth import profile
from cockpit.auth.dependencies import ApiActor
from cockpit.auth.models import LoginSession
from cockpit.auth.schemas import Me
from cockpit.authz.actor import Actor
from cockpit.authz.permissions import permissions_of
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
        )


class ProfileUpdate(InputSchema):
    """Only the fields sent change; ``null`` (or "") for time zone, locale or colour resets it."""

    name: str | None = Field(default=None, max_length=1000)
    timezone: str | None = Field(default=None, max_length=100)
    locale: str | None = Field(default=None, max_length=20)
    avatar_colour: str | None = Field(default=None, max_length=40)


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
async def update_me(body: ProfileUpdate, session: DbSession, actor: ApiActor) -> Profile:
    """Change your name, time zone, language of dates and numbers, or avatar colour."""
    sent = body.model_fields_set
    changes: dict[str, str | None] = {k: getattr(body, k) for k in sent}
    if "name" in changes and changes["name"] is None:
        changes["name"] = ""  # refused by the name check: a person always has a name
    user = await profile.update_profile(session, actor, **changes)  # type: ignore[arg-type]
    return Profile.of(user, actor)


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
