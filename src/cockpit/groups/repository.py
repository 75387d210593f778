from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.groups.models import Group
from cockpit.users.models import User, UserStatus

# Everywhere a group's size is shown (Groups, Credits & Allocations, the API) it counts its active
# members: a deactivated person keeps their group but holds no seat and makes no calls.
ACTIVE = User.status == UserStatus.active


async def get_in_account(session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID) -> Group | None:
    return await session.scalar(select(Group).where(Group.account_id == account_id, Group.id == group_id))


async def get_by_name(session: AsyncSession, account_id: uuid.UUID, name: str) -> Group | None:
    return await session.scalar(
        select(Group).where(Group.account_id == account_id, Group.name_key == name.strip().lower())
    )


async def default_group(session: AsyncSession, account_id: uuid.UUID) -> Group:
    group = await session.scalar(
        select(Group).where(Group.account_id == account_id, Group.is_default.is_(True))
    )
    if group is None:  # every account gets one at creation (and from the migration)
        raise LookupError(f"account {account_id} has no Default group")
    return group


async def list_with_counts(session: AsyncSession, account_id: uuid.UUID) -> list[tuple[Group, int]]:
    rows = await session.execute(with_counts_stmt(account_id))
    return [(group, int(count)) for group, count in rows.all()]


def with_counts_stmt(account_id: uuid.UUID) -> Select[Group, Any]:
    """The account's groups with their active member counts, the Default group first, then by name."""
    counts = (
        select(User.group_id, func.count().label("members"))
        .where(User.account_id == account_id, ACTIVE)
        .group_by(User.group_id)
        .subquery()
    )
    return (
        select(Group, func.coalesce(counts.c.members, 0))
        .outerjoin(counts, counts.c.group_id == Group.id)
        .where(Group.account_id == account_id)
        .order_by(Group.is_default.desc(), Group.name_key)
    )


async def member_count(
    session: AsyncSession, account_id: uuid.UUID, group_id: uuid.UUID, *, active_only: bool = True
) -> int:
    """How many people the group has: its active members (the rule of every page), or everyone."""
    stmt = select(func.count()).select_from(User)
    stmt = stmt.where(User.account_id == account_id, User.group_id == group_id)
    return await session.scalar(stmt.where(ACTIVE) if active_only else stmt) or 0


async def users_in_account(
    session: AsyncSession, account_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> list[User]:
    rows = await session.scalars(select(User).where(User.account_id == account_id, User.id.in_(user_ids)))
    return list(rows)


async def move_all_members(
    session: AsyncSession, account_id: uuid.UUID, source: uuid.UUID, destination: uuid.UUID
) -> None:
    from cockpit.invitations.models import Invitation

    await session.execute(
        update(User)
        .where(User.account_id == account_id, User.group_id == source)
        .values(group_id=destination)
    )
    await session.execute(
        update(Invitation)
        .where(Invitation.account_id == account_id, Invitation.group_id == source)
        .values(group_id=destination)
    )
