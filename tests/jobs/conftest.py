"""Fixtures for the job queue: sessions as a worker gets them, settings, a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.config import Settings
from cockpit.jobs.models import Job
from cockpit.kit.db import make_engine, make_sessionmaker
from cockpit.kit.time import utcnow


@pytest.fixture
async def sessions(database_url: str, db: AsyncSession) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions as a worker gets them in production (its own engine; writers queue on SQLite)."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"jobs_lease_seconds": 30.0, "jobs_retry_seconds": 10.0, "jobs_poll_seconds": 0.05}
    )


class Clock:
    """A clock the test moves by hand (no sleeps)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def fetch_jobs(db: AsyncSession) -> list[Job]:
    await db.rollback()  # see what the workers committed
    rows = await db.scalars(
        select(Job).order_by(Job.created_at, Job.id).execution_options(populate_existing=True)
    )
    return list(rows.all())
