"""The signed-in person's own profile: details, password and console sessions (issue 17).

Every function acts on ``actor``'s own user only; another person's session is "not found".
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.audit.service import Target
from cockpit.auth.models import LoginSession
from cockpit.auth.passwords import check_policy, hash_password_async, verify_password_async
from cockpit.authz.actor import Actor
from cockpit.kit.errors import InvalidInput, NotFound, NotPermitted
from cockpit.kit.time import utcnow
from cockpit.users import service as users
from cockpit.users.models import User

# The console's date styles (console.formatting.LOCALES; accounts.service.LOCALES for organisations).
# Repeated here because auth sits below both layers; a test keeps the three lists equal.
PROFILE_LOCALES = ("en-GB", "en-US", "de-DE", "fr-FR", "iso")
# Initials colours for the avatar (the console maps each name to a colour).
AVATAR_COLOURS = ("slate", "blue", "green", "amber", "red", "violet", "teal", "pink")
MAX_NAME = 200

UNCHANGED: Any = object()


def _invalid(field: str, code: str, message: str) -> InvalidInput:
    return InvalidInput(code, message, details=[{"field": field, "message": message}])


def check_name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME:
        raise _invalid("name", "invalid_name", f"The name needs 1 to {MAX_NAME} characters.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise _invalid("name", "invalid_name", "The name may not contain control characters.")
    return name


def check_timezone(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in available_timezones():
        raise _invalid(
            "timezone", "invalid_timezone", "Unknown time zone (use an IANA name, e.g. Europe/Paris)."
        )
    return value


def check_locale(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in PROFILE_LOCALES:
        choices = ", ".join(PROFILE_LOCALES)
        raise _invalid("locale", "invalid_locale", f"The language of dates must be one of {choices}.")
    return value


def check_avatar_colour(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in AVATAR_COLOURS:
        choices = ", ".join(AVATAR_COLOURS)
        raise _invalid(
            "avatar_colour", "invalid_avatar_colour", f"The avatar colour must be one of {choices}."
        )
    return value


def mismatch() -> InvalidInput:
    return _invalid("confirm_password", "password_mismatch", "The new password and its confirmation differ.")


async def own_user(session: AsyncSession, actor: Actor) -> User:
    user = await users.get_user(session, actor.account_id, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound("user_not_found", "No such user.")
    return user


async def update_profile(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str = UNCHANGED,
    timezone: str | None = UNCHANGED,
    locale: str | None = UNCHANGED,
    avatar_colour: str | None = UNCHANGED,
) -> User:
    """Change the person's own details; everything is checked before anything is written."""
    user = await own_user(session, actor)
    wanted: dict[str, Any] = {}
    if name is not UNCHANGED:
        wanted["name"] = check_name(name)
    if timezone is not UNCHANGED:
        wanted["timezone"] = check_timezone(timezone)
    if locale is not UNCHANGED:
        wanted["locale"] = check_locale(locale)
    if avatar_colour is not UNCHANGED:
        wanted["avatar_colour"] = check_avatar_colour(avatar_colour)
    before = {k: getattr(user, k) for k, v in wanted.items() if getattr(user, k) != v}
    if before:
        after = {k: wanted[k] for k in before}
        for key, value in after.items():
            setattr(user, key, value)
        await audit.record(
            session, actor, "user.profile_updated", target=users.target(user), before=before, after=after
        )
    return user


async def sign_out_other_sessions(session: AsyncSession, actor: Actor, user: User) -> int:
    """Sign out every console session of ``user`` but the caller's own; how many were signed out."""
    conditions = [LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None)]
    if actor.session_id is not None:
        conditions.append(LoginSession.id != actor.session_id)
    result = await session.execute(
        update(LoginSession)
        .where(*conditions)
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def change_password(session: AsyncSession, actor: Actor, *, current: str, new: str) -> int:
    """Set a new password (the current one is required) and sign out every OTHER console session.

    Returns how many sessions were signed out; the caller's own session (if any) stays."""
    user = await own_user(session, actor)
    if not await verify_password_async(user.password_hash, current[:1000]):
        raise NotPermitted("wrong_current_password", "The current password is not correct.")
    check_policy(new, field="new_password")
    if new == current:
        raise _invalid(
            "new_password", "password_unchanged", "The new password must differ from the current one."
        )
    user.password_hash = await hash_password_async(new)
    signed_out = await sign_out_other_sessions(session, actor, user)
    await audit.record(
        session,
        actor,
        "user.password_changed",
        target=users.target(user),
        after={"other_sessions_signed_out": signed_out},
    )
    return signed_out


async def active_sessions(
    session: AsyncSession, actor: Actor, *, idle_minutes: int
) -> Sequence[LoginSession]:
    """The person's live console sessions, most recently seen first."""
    if actor.user_id is None:
        return []
    now = utcnow()
    rows = await session.scalars(
        select(LoginSession)
        .where(
            LoginSession.account_id == actor.account_id,
            LoginSession.user_id == actor.user_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now,
            LoginSession.last_seen_at > now - timedelta(minutes=idle_minutes),
        )
        .order_by(LoginSession.last_seen_at.desc(), LoginSession.created_at.desc())
    )
    return rows.unique().all()


async def sign_out_session(session: AsyncSession, actor: Actor, session_id: uuid.UUID) -> LoginSession:
    """Sign out one of the person's own sessions (another person's is not found: 404)."""
    login_session = await session.scalar(
        select(LoginSession).where(
            LoginSession.id == session_id,
            LoginSession.account_id == actor.account_id,
            LoginSession.user_id == actor.user_id,
            LoginSession.revoked_at.is_(None),
        )
    )
    if login_session is None or actor.user_id is None:
        raise NotFound("session_not_found", "No such session.")
    login_session.revoked_at = utcnow()
    await audit.record(
        session,
        actor,
        "auth.session_signed_out",
        target=Target("user", actor.user_id, actor.label),
        after={
            "session": str(login_session.id),
            "ip": login_session.ip,
            "current": session_id == actor.session_id,
        },
    )
    return login_session
