"""The person's avatar picture (issue 17): set, removed, and served to the people of their account.

The bytes live in ``user_avatars``; ``User.avatar_updated_at`` tells every page that there is one
(and versions its URL) without loading it. Another account's avatar is "not found".
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.audit import service as audit
from cockpit.auth.images import check_image
from cockpit.auth.profile import own_user
from cockpit.authz.actor import Actor
from cockpit.kit.errors import NotFound
from cockpit.kit.time import utcnow
from cockpit.users import service as users
from cockpit.users.models import User, UserAvatar


async def set_avatar(session: AsyncSession, actor: Actor, data: bytes) -> User:
    """Make ``data`` (a PNG, JPEG or WebP image of at most 1 MB) the person's avatar."""
    user = await own_user(session, actor)
    image = check_image(data)
    now = utcnow()
    avatar = await session.get(UserAvatar, user.id)
    replaced = avatar is not None
    if avatar is None:
        avatar = UserAvatar(user_id=user.id, account_id=user.account_id)
        session.add(avatar)
    image.store(avatar, now)
    user.avatar_updated_at = now
    await audit.record(
        session,
        actor,
        "user.avatar_changed",
        target=users.target(user),
        after=image.audited("avatar", replaced=replaced),
    )
    return user


async def remove_avatar(session: AsyncSession, actor: Actor) -> User:
    """Remove the person's avatar picture (the initial shows again); nothing to remove is no change."""
    user = await own_user(session, actor)
    avatar = await session.get(UserAvatar, user.id)
    if avatar is None and user.avatar_updated_at is None:
        return user
    if avatar is not None:
        await session.delete(avatar)
    user.avatar_updated_at = None
    await audit.record(
        session, actor, "user.avatar_changed", target=users.target(user), after={"avatar": "removed"}
    )
    return user


async def avatar_of(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> UserAvatar:
    """The avatar of someone in the caller's account (anyone signed in there may see it: it is shown
    next to names); another account's person, or no picture, is NotFound."""
    avatar = await session.scalar(
        select(UserAvatar).where(UserAvatar.user_id == user_id, UserAvatar.account_id == actor.account_id)
    )
    if avatar is None:
        raise NotFound("avatar_not_found", "No such avatar.")
    return avatar
