"""Helpers for notifications' tests: emit an event as a domain would, run the queue as a worker."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cockpit.config import Settings
from cockpit.events.models import PlatformEvent
from cockpit.events.service import emit
from cockpit.jobs.models import Job
from cockpit.jobs.worker import Worker
from cockpit.notifications.fanout import SEND_EMAIL
from cockpit.notifications.models import Notification


async def emit_event(
    db: AsyncSession, account_id: uuid.UUID, name: str, data: dict[str, Any] | None = None, **kwargs: Any
) -> PlatformEvent:
    event = await emit(db, account_id, name, data or {}, **kwargs)
    assert event is not None
    await db.commit()
    return event


async def run_jobs(app: Any, settings: Settings) -> int:
    worker = Worker(app.state.sessionmaker, settings, schedules=False)
    return await worker.run_until_idle()


async def notifications_of(db: AsyncSession, user_id: uuid.UUID) -> list[Notification]:
    await db.rollback()
    rows = await db.scalars(
        select(Notification)
        .where(Notification.user_id == user_id)
        .order_by(Notification.created_at)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def email_jobs(db: AsyncSession) -> list[Job]:
    await db.rollback()
    rows = await db.scalars(
        select(Job)
        .where(Job.kind == SEND_EMAIL)
        .order_by(Job.dedupe_key)
        .execution_options(populate_existing=True)
    )
    return list(rows)
