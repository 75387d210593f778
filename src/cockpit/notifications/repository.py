"""All SQL of notifications; every query is scoped by account."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.kit.pagination import Page, PageParams, paginate
from cockpit.notifications.models import Channel, Notification, NotificationMute, NotificationTemplate
from cockpit.users.models import User, UserRole, UserStatus


async def templates_of(session: AsyncSession, account_id: uuid.UUID) -> list[NotificationTemplate]:
    rows = await session.scalars(
        select(NotificationTemplate).where(NotificationTemplate.account_id == account_id)
    )
    return list(rows)


async def template_of(
    session: AsyncSession, account_id: uuid.UUID, event: str, channel: Channel
) -> NotificationTemplate | None:
    return await session.scalar(
        select(NotificationTemplate).where(
            NotificationTemplate.account_id == account_id,
            NotificationTemplate.event == event,
            NotificationTemplate.channel == channel,
        )
    )


async def insert_notifications(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write in-app notifications; one that exists already (same event and person) is left alone."""
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(Notification).values(list(rows)).on_conflict_do_nothing(index_elements=["event_id", "user_id"])
    )


def _mine(account_id: uuid.UUID, user_id: uuid.UUID) -> Any:
    return (Notification.user_id == user_id) & (Notification.account_id == account_id)


async def unread_count(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(Notification)
    stmt = stmt.where(_mine(account_id, user_id), Notification.read_at.is_(None))
    return await session.scalar(stmt) or 0


async def page_of(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, params: PageParams, *, unread: bool
) -> Page[Notification]:
    stmt = select(Notification).where(_mine(account_id, user_id))
    if unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    return await paginate(session, stmt.order_by(Notification.created_at.desc(), Notification.id), params)


async def mark_read(
    session: AsyncSession,
    account_id: uuid.UUID,
    user_id: uuid.UUID,
    ids: Collection[uuid.UUID] | None,
    now: datetime,
) -> int:
    """Mark these (None: all) of the person's unread notifications read; how many were."""
    stmt = update(Notification).where(_mine(account_id, user_id), Notification.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    result = await session.execute(stmt.values(read_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def mutes_of(session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID) -> set[str]:
    rows = await session.scalars(
        select(NotificationMute.event).where(
            NotificationMute.account_id == account_id, NotificationMute.user_id == user_id
        )
    )
    return set(rows)


async def replace_mutes(
    session: AsyncSession, account_id: uuid.UUID, user_id: uuid.UUID, events: Collection[str]
) -> None:
    await session.execute(
        delete(NotificationMute).where(
            NotificationMute.account_id == account_id, NotificationMute.user_id == user_id
        )
    )
    for event in sorted(events):
        session.add(NotificationMute(id=uuid.uuid4(), account_id=account_id, user_id=user_id, event=event))
    await session.flush()


async def muted_among(
    session: AsyncSession, account_id: uuid.UUID, event: str, user_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    if not user_ids:
        return set()
    rows = await session.scalars(
        select(NotificationMute.user_id).where(
            NotificationMute.account_id == account_id,
            NotificationMute.event == event,
            NotificationMute.user_id.in_(list(user_ids)),
        )
    )
    return set(rows)


async def active_admins(session: AsyncSession, account_id: uuid.UUID) -> list[User]:
    """The account's active owners and administrators (read-only: recipients of notifications)."""
    rows = await session.scalars(
        select(User)
        .where(
            User.account_id == account_id,
            User.status == UserStatus.active,
            User.role.in_((UserRole.owner, UserRole.admin)),
        )
        .order_by(User.email)
    )
    return list(rows)
