"""The queue's own housekeeping: finished jobs are forgotten after ``COCKPIT_JOBS_KEEP_DAYS``."""

from __future__ import annotations

from datetime import timedelta

from cockpit.jobs import queue
from cockpit.jobs.registry import JobContext, registry

KIND = "jobs.prune"


async def prune(ctx: JobContext) -> None:
    async with ctx.sessionmaker() as session, session.begin():
        await queue.prune(session, before=ctx.now() - timedelta(days=ctx.settings.jobs_keep_days))


registry.register(KIND, prune, max_attempts=3)
registry.every(KIND, lambda _settings: timedelta(days=1))
