"""Running the export jobs in a test: a worker that knows only ``exports.make``, until nothing is left."""

from __future__ import annotations

from sqlalchemy import func, select

from cockpit.analytics.service import Labeler
from cockpit.config import Settings
from cockpit.events import service as events
from cockpit.exports import service
from cockpit.exports.tasks import _failed, make_task
from cockpit.jobs.models import Job
from cockpit.jobs.registry import Registry
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker


async def run_exports(settings: Settings, database_url: str, labeler: Labeler) -> int:
    """Make the queued exports with these names; how many export jobs ran (the announcements of the
    finished exports, ``events.fan_out`` jobs, are run by the events' own handler and not counted)."""
    kinds = Registry()
    kinds.register(service.MAKE, make_task(labeler), max_attempts=3, on_dead=_failed)
    kinds.register(events.FAN_OUT, events.fan_out, max_attempts=8)
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)

    async def attempts() -> int:
        async with sessionmaker() as session:
            total = await session.scalar(
                select(func.coalesce(func.sum(Job.attempts), 0)).where(Job.kind == service.MAKE)
            )
        return int(total or 0)

    try:
        before = await attempts()
        await Worker(sessionmaker, settings, kinds=kinds, schedules=False).run_until_idle()
        return await attempts() - before
    finally:
        await engine.dispose()
