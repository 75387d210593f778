"""Background jobs of the usage domain: stored inputs and outputs are cleared once their account's
retention period has ended. Idempotent: it clears what is expired at the time it runs."""

from __future__ import annotations

from datetime import timedelta

from cockpit.jobs.registry import JobContext, registry
from cockpit.usage.recorder import purge_expired_content

KIND = "usage.purge_content"


async def purge_content(ctx: JobContext) -> None:
    await purge_expired_content(ctx.sessionmaker, now=ctx.now())


registry.register(KIND, purge_content, max_attempts=3)
registry.every(KIND, lambda _settings: timedelta(hours=1))
