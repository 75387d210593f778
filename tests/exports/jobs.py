"""Running the export jobs in a test: a worker that knows only ``exports.make``, until nothing is left."""

from __future__ import annotations

from cockpit.analytics.service import Labeler
from cockpit.config import Settings
from cockpit.exports import service
from cockpit.exports.tasks import _failed, make_task
from cockpit.jobs.registry import Registry
from cockpit.jobs.worker import Worker
from cockpit.kit.db import make_engine, make_sessionmaker


async def run_exports(settings: Settings, database_url: str, labeler: Labeler) -> int:
    """Make the queued exports (and no other job) with these names; how many jobs ran."""
    kinds = Registry()
    kinds.register(service.MAKE, make_task(labeler), max_attempts=3, on_dead=_failed)
    engine = make_engine(database_url)
    try:
        return await Worker(
            make_sessionmaker(engine), settings, kinds=kinds, schedules=False
        ).run_until_idle()
    finally:
        await engine.dispose()
