"""The queue's worker: claims due jobs, runs their handlers, keeps their leases, enqueues periodic jobs.

``cockpit worker`` runs one (any number of them may share a database); ``cockpit serve`` runs one
inside the server process too unless ``COCKPIT_CREDITS_SCHEDULER=false``. A worker that is stopped
(SIGTERM) stops claiming, lets its running jobs finish for ``grace`` seconds and gives back the
rest; a worker that dies (SIGKILL, a lost machine) stops renewing its leases, and once a lease has
expired any other worker hands the job back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cockpit.config import Settings
from cockpit.jobs import queue
from cockpit.jobs.models import Job, JobStatus, RunStatus
from cockpit.jobs.registry import JobContext, PermanentJobError, Registry, registry
from cockpit.jobs.schedules import disabled_kinds
from cockpit.jobs.service import _local_wakers, enqueue
from cockpit.kit.db import READ_ONLY
from cockpit.kit.time import utcnow

log = logging.getLogger("cockpit.jobs")


def period_key(kind: str, every: timedelta, now: datetime) -> tuple[str, datetime]:
    """The dedupe key and start of the period of ``every`` that contains ``now``."""
    seconds = max(1.0, every.total_seconds())
    index = int(now.timestamp() // seconds)
    return f"{kind}@{index}", datetime.fromtimestamp(index * seconds, UTC)


class Worker:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        kinds: Registry = registry,
        concurrency: int | None = None,
        name: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        schedules: bool = True,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.kinds = kinds
        self.concurrency = max(1, concurrency or settings.jobs_concurrency)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.schedules = schedules
        self.lease = timedelta(seconds=settings.jobs_lease_seconds)
        self._tasks: dict[asyncio.Task[None], Job] = {}
        self._wake = asyncio.Event()
        self._scheduled: dict[str, str] = {}  # kind -> the last period key this worker enqueued
        self._last_recovery: datetime | None = None
        self._runs: dict[uuid.UUID, uuid.UUID] = {}  # job id -> its execution row (job_runs)

    def wake(self) -> None:
        self._wake.set()

    # ---- one pass ----

    async def recover(self) -> int:
        """Hand back the jobs of dead workers (expired leases); run the give-up hooks of those that
        had no attempt left."""
        now = self.clock()
        async with self.sessionmaker() as session, session.begin():
            jobs = await queue.recover_expired(session, now=now)
        for job in jobs:
            log.warning("job handed back: its worker's lease expired", extra=_job_extra(job))
            if job.status == JobStatus.dead.value:
                await self._on_dead(job, queue.LEASE_LOST)
        self._last_recovery = now
        return len(jobs)

    async def enqueue_schedules(self) -> None:
        now = self.clock()
        due = []
        for schedule in self.kinds.schedules:
            key, start = period_key(schedule.kind, schedule.every(self.settings), now)
            if self._scheduled.get(schedule.kind) != key:
                due.append((schedule, key, start))
        if not due:
            return
        # Read only when a period begins: a schedule disabled in OPERATIONS → Jobs skips its periods
        # (enabled again, it runs from its next period; "Run now" runs it at once).
        async with self.sessionmaker() as session:
            await session.connection(execution_options=READ_ONLY)
            disabled = await disabled_kinds(session)
            await session.commit()
        for schedule, key, start in due:
            if schedule.kind in disabled:
                self._scheduled[schedule.kind] = key
                continue
            async with self.sessionmaker() as session, session.begin():
                await enqueue(
                    session, schedule.kind, dict(schedule.payload), run_at=start, dedupe_key=key,
                    kinds=self.kinds,
                )  # fmt: skip
            self._scheduled[schedule.kind] = key

    async def claim(self, limit: int) -> list[Job]:
        now = self.clock()
        async with self.sessionmaker() as session:
            # A read-only look first: on SQLite a claim takes the database's write lock.
            await session.connection(execution_options=READ_ONLY)
            due = await queue.any_due(session, now)
            await session.commit()
            if not due:
                return []
            async with session.begin():
                jobs = await queue.claim(session, self.name, now=now, lease=self.lease, limit=limit)
                # Each execution's row is written with the claim: no transaction more per job.
                self._runs.update(await queue.start_runs(session, jobs, self.name, now=now))
                return jobs

    async def run_once(self) -> int:
        """Recover, schedule, then claim what is due and run it to the end; returns how many ran."""
        await self.recover()
        if self.schedules:
            await self.enqueue_schedules()
        jobs = await self.claim(self.concurrency)
        await asyncio.gather(*(self._execute(job) for job in jobs))
        return len(jobs)

    async def run_until_idle(self, *, limit: int = 10_000) -> int:
        """Run passes until nothing is due (for tests and one-shot maintenance)."""
        total = 0
        while total < limit:
            ran = await self.run_once()
            if not ran:
                break
            total += ran
        return total

    # ---- the loop ----

    async def run(self, stop: asyncio.Event) -> None:
        """Run jobs until ``stop`` is set; then let running jobs finish for the grace period and
        give back those still running."""
        _local_wakers.add(self.wake)
        log.info("job worker started", extra={"worker": self.name, "concurrency": self.concurrency})
        poll = self.settings.jobs_poll_seconds
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self._pass()
                except Exception:
                    log.exception("job queue pass failed")
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(
                        [*waits, *self._tasks], timeout=poll, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waits:
                        waiter.cancel()
        finally:
            _local_wakers.discard(self.wake)
            await self._drain()
            log.info("job worker stopped", extra={"worker": self.name})

    async def _pass(self) -> None:
        now = self.clock()
        if self._last_recovery is None or now - self._last_recovery >= self.lease / 4:
            await self.recover()
        if self.schedules:
            await self.enqueue_schedules()
        free = self.concurrency - len(self._tasks)
        if free > 0:
            for job in await self.claim(free):
                task = asyncio.create_task(self._execute(job))
                self._tasks[task] = job
                task.add_done_callback(self._tasks.pop)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        tasks = list(self._tasks)
        _done, pending = await asyncio.wait(tasks, timeout=self.settings.jobs_grace_seconds)
        for task in pending:
            task.cancel()  # _execute gives the job back
        await asyncio.gather(*pending, return_exceptions=True)

    # ---- one job ----

    def _context(self, job: Job) -> JobContext:
        return JobContext(
            job_id=job.id, kind=job.kind, payload=dict(job.payload or {}), account_id=job.account_id,
            attempt=job.attempts, max_attempts=job.max_attempts, sessionmaker=self.sessionmaker,
            settings=self.settings, now=self.clock,
        )  # fmt: skip

    async def _execute(self, job: Job) -> None:
        spec = self.kinds.kinds.get(job.kind)
        if spec is None:
            await self._fail(job, f"No handler for jobs of kind {job.kind!r} in this worker.", False)
            self._runs.pop(job.id, None)
            return
        inner = asyncio.ensure_future(spec.handler(self._context(job)))
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(job, inner, lost))
        started = time.monotonic()
        try:
            await inner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                await _settle(self._give_back(job, started))
                raise
            if lost.is_set():
                log.warning("job lease lost: another worker took the job over", extra=_job_extra(job))
                await _settle(self._end_run(job, RunStatus.lost, started, queue.LEASE_LOST))
                return
            await _settle(self._fail(job, "The job was cancelled.", False, started))
        except PermanentJobError as exc:
            await _settle(self._fail(job, queue.scrub_error(exc), True, started, exc))
        except Exception as exc:
            log.exception("job attempt failed", extra=_job_extra(job))
            await _settle(self._fail(job, queue.scrub_error(exc), False, started, exc))
        else:
            await _settle(self._finish(job, started))
        finally:
            self._runs.pop(job.id, None)
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _finish(self, job: Job, started: float) -> None:
        async with self.sessionmaker() as session, session.begin():
            if await queue.finish(session, job.id, self.name, now=self.clock()):
                await self._record_end(session, job, RunStatus.done, started)

    async def _record_end(
        self,
        session: AsyncSession,
        job: Job,
        status: RunStatus | str,
        started: float,
        error: str | None = None,
        exc: BaseException | None = None,
    ) -> None:
        """Complete the execution row, in the transaction that records the job's outcome."""
        run_id = self._runs.get(job.id)
        if run_id is None:
            return
        await queue.end_run(
            session, run_id, status, now=self.clock(), duration_ms=int((time.monotonic() - started) * 1000),
            error=error, traceback=queue.traceback_excerpt(exc) if exc is not None else None,
        )  # fmt: skip

    async def _end_run(self, job: Job, status: RunStatus, started: float, error: str | None) -> None:
        async with self.sessionmaker() as session, session.begin():
            await self._record_end(session, job, status, started, error)

    async def _keep_lease(self, job: Job, inner: asyncio.Future[None], lost: asyncio.Event) -> None:
        """Renew the lease every third of its length; cancel the handler if the job was taken away."""
        every = self.lease.total_seconds() / 3
        while not inner.done():
            await asyncio.sleep(every)
            try:
                async with self.sessionmaker() as session, session.begin():
                    kept = await queue.renew(session, job.id, self.name, until=self.clock() + self.lease)
            except Exception:
                log.exception("job lease renewal failed", extra=_job_extra(job))
                continue  # tried again; the lease is long enough for a few misses
            if not kept:
                lost.set()
                inner.cancel()
                return

    async def _fail(
        self, job: Job, error: str, permanent: bool, started: float | None = None,
        exc: BaseException | None = None,
    ) -> None:  # fmt: skip
        async with self.sessionmaker() as session, session.begin():
            status = await queue.fail(
                session, job.id, self.name, now=self.clock(), error=error,
                retry_base=self.settings.jobs_retry_seconds, permanent=permanent,
            )  # fmt: skip
            if status is not None:
                await self._record_end(session, job, status, started or time.monotonic(), error, exc)
        if status == JobStatus.dead.value:
            log.error("job gave up", extra=_job_extra(job))
            await self._on_dead(job, error)

    async def _give_back(self, job: Job, started: float) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                if await queue.give_back(session, job.id, self.name, now=self.clock()):
                    await self._record_end(session, job, RunStatus.interrupted, started)
            log.info("job given back at shutdown", extra=_job_extra(job))
        except Exception:  # its lease will expire and another worker will take it
            log.exception("could not give a job back", extra=_job_extra(job))

    async def _on_dead(self, job: Job, error: str) -> None:
        spec = self.kinds.kinds.get(job.kind)
        if spec is None or spec.on_dead is None:
            return
        try:
            await spec.on_dead(self._context(job), error)
        except Exception:
            log.exception("job give-up hook failed", extra=_job_extra(job))


async def _settle(bookkeeping: Coroutine[Any, Any, None]) -> None:
    """Record a job's outcome even if the worker is being stopped meanwhile: a job whose handler has
    finished is marked done (not run again after its lease expires), one being stopped is given back."""
    task = asyncio.ensure_future(bookkeeping)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _job_extra(job: Job) -> dict[str, object]:
    return {"job_id": str(job.id), "job_kind": job.kind, "attempt": job.attempts}
