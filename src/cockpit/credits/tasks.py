"""Background jobs of the credits domain: cycles roll over on time (see scheduler.py).

Idempotent: each account is rolled over under its lock after looking at its open cycle again, so a
job that runs twice (or beside a request that rolled the cycle over) changes nothing the second time.
"""

from __future__ import annotations

from datetime import timedelta

from cockpit.credits.scheduler import roll_over_due
from cockpit.jobs.registry import JobContext, registry

KIND = "credits.roll_over"


async def roll_over(ctx: JobContext) -> None:
    await roll_over_due(ctx.sessionmaker)


# Not retried: the next period's job (a few seconds later) does the same work.
registry.register(KIND, roll_over, max_attempts=1)
registry.every(KIND, lambda settings: timedelta(seconds=settings.credits_scheduler_seconds))
