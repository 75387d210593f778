"""Background job of the analytics domain: the rollups take in the calls recorded since the last
run (docs/analytics-rollups.md). Idempotent: each run adds exactly the calls above the watermark
and moves it in the same transaction.

A roll runs on an event loop of its own, in a thread with its own engine (``kit.loop_thread``): it
builds and reads a few dozen statements, and on the loop of a server that also runs the job queue
(``cockpit serve``) every gateway call would wait behind each of those steps."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.analytics.rollups import roll
from cockpit.jobs.registry import JobContext, registry
from cockpit.kit.loop_thread import LoopThread

KIND = "usage.rollup"


class RollupThread(LoopThread):
    name = "cockpit-rollups"


_threads: dict[str, RollupThread] = {}
_lock = threading.Lock()


def _thread(url: str) -> RollupThread:
    with _lock:
        return _threads.setdefault(url, RollupThread(url))


async def roll_up(ctx: JobContext) -> None:
    now, people_from = ctx.now(), ctx.settings.rollup_people_from

    async def job(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        async with sessionmaker() as session:
            return await roll(session, now=now, people_from=people_from)

    await _thread(ctx.settings.database_url).run(job)


registry.register(KIND, roll_up, max_attempts=3)
registry.every(KIND, lambda settings: timedelta(seconds=settings.rollup_seconds))
