"""Background jobs of conversations: daily retention and purge (see ``retention``). Idempotent: each
run deletes what is due at the time it runs, in batches that re-check their conditions."""

from __future__ import annotations

from datetime import timedelta

# files registers the purge hook that deletes a purged conversation's stored files (after commit),
# also in a worker process that never loads the API or the console.
from cockpit.conversations import files, retention
from cockpit.jobs.registry import JobContext, registry

KIND = "conversations.purge"
__all__ = ["KIND", "files", "purge"]


async def purge(ctx: JobContext) -> None:
    await retention.run(ctx.sessionmaker, now=ctx.now(), settings=ctx.settings)


registry.register(KIND, purge, max_attempts=3)
registry.every(KIND, lambda _settings: timedelta(days=1))
