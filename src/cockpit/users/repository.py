from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.users.models import User, UserRole, UserStatus


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    """Login lookup: e-mail is unique installation-wide, so this is not account-scoped."""
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def get_in_account(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    return await session.scalar(select(User).where(User.account_id == account_id, User.id == user_id))


async def list_in_account(session: AsyncSession, account_id: uuid.UUID) -> list[User]:
    rows = await session.scalars(select(User).where(User.account_id == account_id).order_by(User.email))
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
