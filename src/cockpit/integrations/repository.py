"""All SQL of the integrations domain; every query is scoped by account."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.integrations.models import Integration, IntegrationToken
from cockpit.kit.sql import LIKE_ESCAPE, contains_pattern, names_in_account


async def get(session: AsyncSession, account_id: uuid.UUID, integration_id: uuid.UUID) -> Integration | None:
    return await session.scalar(
        select(Integration).where(Integration.account_id == account_id, Integration.id == integration_id)
    )


async def by_slug(session: AsyncSession, account_id: uuid.UUID, slug: str) -> Integration | None:
    return await session.scalar(
        select(Integration).where(Integration.account_id == account_id, Integration.slug == slug)
    )


def list_stmt(account_id: uuid.UUID, *, search: str | None, enabled: bool | None) -> Select[Integration]:
    stmt = select(Integration).where(Integration.account_id == account_id)
    if search:
        pattern = contains_pattern(search.lower())
        stmt = stmt.where(
            or_(
                Integration.name.ilike(pattern, escape=LIKE_ESCAPE),
                Integration.slug.ilike(pattern, escape=LIKE_ESCAPE),
                Integration.url.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    if enabled is not None:
        stmt = stmt.where(Integration.enabled.is_(enabled))
    return stmt.order_by(Integration.name, Integration.id)


async def by_ids(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> list[Integration]:
    if not ids:
        return []
    rows = await session.scalars(
        select(Integration)
        .where(Integration.account_id == account_id, Integration.id.in_(list(ids)))
        .order_by(Integration.name)
    )
    return list(rows)


async def names(
    session: AsyncSession, account_id: uuid.UUID, ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, str]:
    return await names_in_account(session, Integration, Integration.name, account_id, ids)


async def token(
    session: AsyncSession, account_id: uuid.UUID, integration_id: uuid.UUID, user_id: uuid.UUID | None
) -> IntegrationToken | None:
    owner = IntegrationToken.user_id.is_(None) if user_id is None else IntegrationToken.user_id == user_id
    return await session.scalar(
        select(IntegrationToken)
        .where(
            IntegrationToken.account_id == account_id,
            IntegrationToken.integration_id == integration_id,
            owner,
        )
        .order_by(IntegrationToken.created_at.desc())
        .limit(1)
    )


async def drop_tokens(
    session: AsyncSession,
    account_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    every: bool = False,
) -> None:
    """Delete the integration's own token (``user_id`` None), one person's, or ``every`` one."""
    stmt = delete(IntegrationToken).where(
        IntegrationToken.account_id == account_id, IntegrationToken.integration_id == integration_id
    )
    if not every:
        stmt = stmt.where(
            IntegrationToken.user_id.is_(None) if user_id is None else IntegrationToken.user_id == user_id
        )
    await session.execute(stmt)
