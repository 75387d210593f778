"""Background job of the analytics domain: the rollups take in the calls recorded since the last
run (docs/analytics-rollups.md). Idempotent: each run adds exactly the calls above the watermark
and moves it in the same transaction."""

from __future__ import annotations

from datetime import timedelta

from cockpit.analytics.rollups import roll
from cockpit.jobs.registry import JobContext, registry

KIND = "usage.rollup"


async def roll_up(ctx: JobContext) -> None:
    async with ctx.sessionmaker() as session:
        await roll(session, now=ctx.now(), people_from=ctx.settings.rollup_people_from)


registry.register(KIND, roll_up, max_attempts=3)
registry.every(KIND, lambda settings: timedelta(seconds=settings.rollup_seconds))
