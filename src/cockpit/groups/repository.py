"""All SQL of the groups domain. Every query is scoped to one account."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.groups.models import Group
from cockpit.kit.sql import names_in_account


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


def list_stmt(account_id: uuid.UUID) -> Select[Group]:
    """The account's groups, the Default group first, then by name."""
    return (
        select(Group).where(Group.account_id == account_id).order_by(Group.is_default.desc(), Group.name_key)
    )


async def list_in_account(session: AsyncSession, account_id: uuid.UUID) -> list[Group]:
    return list(await session.scalars(list_stmt(account_id)))


async def names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, Group, Group.name, account_id, ids)
