"""All SQL of the users domain. Every query but the login look-up is scoped to one account."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern
from cockpit.users.models import User, UserRole, UserStatus
from cockpit.users.queries import SORTS, UserFilters


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """Login lookup: e-mail is unique installation-wide, so this is not account-scoped."""
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def get_in_account(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    return await session.scalar(select(User).where(User.account_id == account_id, User.id == user_id))


async def list_in_account(
    session: AsyncSession, account_id: uuid.UUID, *, by_name: bool = False, limit: int | None = None
) -> list[User]:
    """The account's users by e-mail (or by name, then e-mail), the first ``limit`` of them."""
    order = (User.name, User.email) if by_name else (User.email,)
    rows = await session.scalars(
        select(User).where(User.account_id == account_id).order_by(*order).limit(limit)
    )
    return list(rows)


async def count_in_account(
    session: AsyncSession, account_id: uuid.UUID, *, status: UserStatus | None = None
) -> int:
    stmt = select(func.count()).select_from(User).where(User.account_id == account_id)
    if status is not None:
        stmt = stmt.where(User.status == status)
    return await session.scalar(stmt) or 0


async def count_active_owners(session: AsyncSession, account_id: uuid.UUID) -> int:
    stmt = (
        select(func.count())
        .select_from(User)
        .where(User.account_id == account_id, User.role == UserRole.owner, User.status == UserStatus.active)
    )
    return await session.scalar(stmt) or 0


def search_stmt(account_id: uuid.UUID, filters: UserFilters) -> Select[User]:
    stmt = select(User).where(User.account_id == account_id)
    if filters.q:
        pattern = contains_pattern(filters.q.strip().lower())
        stmt = stmt.where(
            or_(
                User.email.like(pattern, escape=LIKE_ESCAPE),
                func.lower(User.name).like(pattern, escape=LIKE_ESCAPE),
            )
        )
    if filters.role:
        stmt = stmt.where(User.role == filters.role)
    if filters.status:
        stmt = stmt.where(User.status == filters.status)
    if filters.group_id:
        stmt = stmt.where(User.group_id == filters.group_id)
    if filters.seat:
        stmt = stmt.where(getattr(User, f"seat_{filters.seat.value}").is_(True))
    descending = filters.sort.startswith("-")
    name = filters.sort.lstrip("-")
    column = getattr(User, name if name in SORTS else "email")
    order = column.desc() if descending else column.asc()
    # The id breaks ties so that pages never overlap or skip rows.
    return stmt.order_by(order.nulls_last() if name == "last_login_at" else order, User.id)


# Everywhere a group's size is shown (Groups, Credits & Allocations, the API) it counts its active
# members: a deactivated person keeps their group but holds no seat and makes no calls.
ACTIVE = User.status == UserStatus.active


async def group_sizes(
    session: AsyncSession, account_id: uuid.UUID, group_ids: Collection[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    """How many active people each group has (groups with nobody are left out)."""
    stmt = (
        select(User.group_id, func.count())
        .where(User.account_id == account_id, ACTIVE)
        .group_by(User.group_id)
    )
    if group_ids is not None:
        stmt = stmt.where(User.group_id.in_(list(group_ids)))
    return {group_id: int(count) for group_id, count in (await session.execute(stmt)).all()}


async def group_size(
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


async def move_group(
    session: AsyncSession, account_id: uuid.UUID, source: uuid.UUID, destination: uuid.UUID
) -> None:
    await session.execute(
        update(User)
        .where(User.account_id == account_id, User.group_id == source)
        .values(group_id=destination)
    )


async def by_ids(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    rows = await session.scalars(select(User).where(User.account_id == account_id, User.id.in_(list(ids))))
    return {user.id: user for user in rows}
